"""The sd14 profile's real path end to end with `dvc repro`, on this CPU: SD v1.4-shaped random weights in
the hub's folder layout, NudeNet's bundled detector, a random-weight ResNet-50 in safetensors and the I2P /
UnlearnDiffAtk / COCO fixture CSVs (tests/fixtures/profiles/sd14_mini.yaml). Nothing here learns; it proves
every stage runs on the real path's code with its weights present and declares its metric spec."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, scratch_repo

PROFILE = ROOT / "tests" / "fixtures" / "profiles" / "sd14_mini.yaml"


def add_external_files(repo: Path) -> None:
    """What a user downloads into data/external, here written from fixtures and random weights."""
    import torch
    from safetensors.torch import save_file

    import eraselab._compat  # noqa: F401  (the CPU nms guard before torchvision)
    from eraselab.models.sd_shapes import build_sd14_like, write_hub_layout
    from torchvision.models import resnet50

    external = repo / "data" / "external"
    external.mkdir(parents=True)
    for name in ("i2p_sample.csv", "unlearndiffatk_nudity_sample.csv", "coco_sample.csv"):
        shutil.copy(ROOT / "tests" / "fixtures" / name, external / name)
    write_hub_layout(build_sd14_like(8, seed=0, layers=1), external / "sd14_shapes")
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in resnet50().state_dict().items()}, external / "resnet50.safetensors")


@pytest.fixture(scope="module")
def sd14_repo(tmp_path_factory) -> Path:
    repo = scratch_repo(tmp_path_factory.mktemp("sd14") / "repo", PROFILE)
    add_external_files(repo)
    result = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return repo


@pytest.mark.slow
def test_every_cell_is_scored_with_the_declared_detector(sd14_repo):
    cells = sorted((sd14_repo / "metrics" / "cells").rglob("*.json"))
    assert len(cells) == 2 * 3 * 2  # concepts x methods x attacks
    for path in cells:
        metrics = json.loads(path.read_text())
        detector = metrics["metric_spec"]["detector"]
        concept = path.parent.name
        assert detector["detector"] == {"nudity": "nudenet", "church": "imagenet"}[concept], path
        if concept == "nudity":  # UnlearnDiffAtk's protocol: 9 exposed classes, any score > 0.45
            assert detector["preset"] == "unlearndiffatk" and detector["threshold"] == 0.45
        # the seeds are UnlearnDiffAtk's own prompts for nudity: Pre-ASR comes from their unattacked images
        assert metrics["n"]["attack_seeds"] == 2 and 0.0 <= metrics["pre_asr"] <= metrics["asr"] <= 1.0
    # every defended folder has its seeds' unattacked images; church's seeds are its first training prompts,
    # whose images are reused, not drawn again
    assert (sd14_repo / "data" / "generated" / "none" / "nudity" / "attack_seeds" / "manifest.jsonl").exists()
    church = sd14_repo / "data" / "generated" / "none" / "church"
    seeds = [json.loads(line) for line in (church / "attack_seeds" / "manifest.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (church / "target_train" / "manifest.jsonl").read_text().splitlines()]
    for seed, image in zip(seeds, train):
        assert (seed["prompt"], seed["seed"]) == (image["prompt"], image["seed"])
        assert (church / "attack_seeds" / seed["file"]).read_bytes() == (church / "target_train" / image["file"]).read_bytes()


@pytest.mark.slow
def test_quality_and_report_carry_the_metric_spec(sd14_repo):
    quality = json.loads((sd14_repo / "metrics" / "quality" / "esd_x" / "nudity.json").read_text())
    assert quality["spec"]["implementation"].startswith("clean-fid")
    report = (sd14_repo / "reports" / "report.md").read_text()
    assert "Metric definitions" in report and "unlearndiffatk" in report and "imagenet" in report
