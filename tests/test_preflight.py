"""The real path checks every external weight and data file before any compute, and lists them all."""

import subprocess
from pathlib import Path

import pytest

from eraselab.params import Params, load_profile
from eraselab.preflight import MissingExternalsError, check_externals, missing_externals

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network probes: this machine cannot download anyway
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")


def test_the_toy_world_needs_nothing_from_outside(offline):
    assert missing_externals(Params()) == []


def test_sd14_lists_every_missing_file_with_what_to_download(offline, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no data/external here
    missing = missing_externals(load_profile(ROOT / "profiles" / "sd14.yaml"))
    text = "\n".join(missing)
    for expected in ("model.hub_id 'CompVis/stable-diffusion-v1-4'", "hf download CompVis/stable-diffusion-v1-4",
                     "evaluation.detectors.church.params.weights", "evaluation.clip_score",
                     "evaluation.fid: clean-fid's Inception", "real_concepts.nudity.attack_seeds.path",
                     "real_concepts.nudity.retain.path", "real_concepts.nudity.target_heldout",
                     "evaluation.detectors.violence.params.weights: data/external/q16_prompts.safetensors missing",
                     "eraselab convert-q16", "real_concepts.violence.attack_seeds.path: data/external/unlearndiffatk_violence.csv",
                     "real_concepts.violence.target_heldout"):
        assert expected in text, expected
    # one file, one line, naming every key that reads it
    assert ("real_concepts.nudity.retain.path, retain_fit, real_concepts.violence.retain.path, retain_fit: "
            "data/external/coco_10k.csv does not exist") in text
    assert ("evaluation.detectors.church.params.weights, evaluation.detectors.parachute.params.weights: "
            "data/external/resnet50.safetensors missing") in text
    assert text.count("coco_10k.csv does not exist") == 1  # one file, listed once with both keys
    with pytest.raises(MissingExternalsError, match=f"{len(missing)} external inputs missing or malformed"):
        check_externals(load_profile(ROOT / "profiles" / "sd14.yaml"))


def test_a_present_file_is_no_longer_listed(offline, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    params = load_profile(ROOT / "profiles" / "sd14.yaml")
    before = missing_externals(params)
    (tmp_path / "data" / "external").mkdir(parents=True)
    (tmp_path / "data" / "external" / "resnet50.safetensors").write_bytes(b"x")
    after = missing_externals(params)
    assert len(after) == len(before) - 1 and not any("church.params.weights" in line for line in after)


def test_a_stage_on_sd14_without_weights_stops_before_writing_anything(tmp_path):
    params = subprocess.run(["eraselab", "params", "--profile", str(ROOT / "profiles" / "sd14.yaml")],
                            capture_output=True, text=True, check=True).stdout
    (tmp_path / "params.yaml").write_text(params)
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(["eraselab", "world"], cwd=tmp_path, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 2
    assert "external inputs missing or malformed; nothing was computed" in result.stderr and "hf download" in result.stderr
    assert not (tmp_path / "data").exists()
