"""The report's cost section: built from logs/stages records on synthetic report inputs (no pipeline run);
it shows the per-kind numbers, never touches metrics.json, and a missing folder is one line, not a failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eraselab.generate import write_images
from eraselab.params import parse_params
from eraselab.report.build import build_report
from eraselab.report.cost import SECTION_TITLE

TAG = " (profile default)"  # every section names the profile its numbers come from

ATTACK = "no_attack"
RECORDS = {"world": ("world", 4.0, 500.0), "erase.esd_x.red": ("erase", 60.0, 900.0),
           "erase.esd_x.star": ("erase", 80.3, 950.0), "erase.uce.red": ("erase", 2.0, 700.0),
           "attack.esd_x.red.cce": ("attack", 30.0, 5000.0), "evaluate_base": ("evaluate_base", 7.5, 800.0)}


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def inputs(tmp_path):
    """Every file build_report reads, for a one-cell grid (none x red x no_attack), with made-up numbers."""
    params = parse_params({"grid": {"methods": ["none"], "concepts": ["red"], "attacks": [ATTACK]},
                           "report": {"grid_columns": 2, "grid_rows": 1}})
    m, p = tmp_path / "metrics", tmp_path / "plots"
    kinds = {"shape": ["square"], "colour": ["red"], "texture": ["striped"]}
    _json(m / "base_model.json", {"accuracy": {k: 0.5 for k in kinds}, "clip_score": 20.0, "n_images": 4,
                                  "per_concept": {k: {c: 0.5 for c in v} for k, v in kinds.items()}})
    _json(m / "base_model_train.json", {"vae_psnr_db": 25.0, "params_m": {"unet": 0.1}})
    _json(m / "judge.json", {"heldout_accuracy": {k: 1.0 for k in kinds}})
    _json(m / "clip.json", {"zero_shot_accuracy": {k: 0.9 for k in kinds}})
    cell = {"target_rate": 0.1, "heldout_rate": 0.2, "pre_asr": 0.1, "asr": 0.3, "retention": 0.8, "clip": 21.0,
            "metric_spec": {"detector": {"detector": "judge"}}}
    _json(m / "cells" / "none" / "red" / f"{ATTACK}.json", cell)
    _json(m / "quality" / "none" / "red.json", {"fid": None, "kid": 0.001, "spec": {"feature_extractor": "clip_image"}})
    _json(p / "base_model" / "vae.json", [{"stage": "vae", "step": 1, "psnr": 20.0}, {"stage": "vae", "step": 2, "psnr": 22.0}])
    _json(p / "base_model" / "unet.json", [{"stage": "unet", "step": 1, "loss": 1.0}, {"stage": "unet", "step": 2, "loss": 0.5}])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    records = [{"prompt": f"a red square {i}"} for i in range(4)]
    write_images(tmp_path / "attacks" / "none" / "red" / ATTACK / "images", images[:2], records[:2])
    return params, tmp_path, images, records


def _build(inputs, out: str, timings: Path | None) -> Path:
    params, root, images, records = inputs
    build_report(params, root / "metrics", root / "plots", images, records, None, root / out, root / "metrics" / "cells",
                 root / "attacks", root / "ablations", timings_dir=timings)
    return root / out


def _stage_records(folder: Path) -> None:
    for out, (stage, wall, rss) in RECORDS.items():
        _json(folder / f"{out}.json", {"stage": stage, "wall_s": wall, "peak_rss_mb": rss})


def test_cost_section_shows_per_kind_numbers_and_leaves_metrics_alone(inputs):
    timings = inputs[1] / "logs" / "stages"
    _stage_records(timings)
    (timings / "notes.json").write_text("[1, 2]")  # not stage records: skipped, said so, no failure
    _json(timings / "odd.json", {"stage": "world", "wall_s": "slow", "peak_rss_mb": 1.0})
    with_cost = _build(inputs, "with", timings)
    without = _build(inputs, "without", None)
    assert (with_cost / "metrics.json").read_bytes() == (without / "metrics.json").read_bytes()
    assert "wall_s" not in (with_cost / "metrics.json").read_text()

    md = (with_cost / "report.md").read_text()
    section = md.split(f"## {SECTION_TITLE}{TAG}\n", 1)[1]
    assert md.index(f"## {SECTION_TITLE}") > md.index(f"## Samples{TAG}")  # the report's last section
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| stage kind | stages | total wall (s) | slowest (s) | max peak RSS (MB) |")
    assert rows[1:] == ["| world | 1 | 4.0 | 4.0 | 500 | yes |",  # the DAG's order, erase split per method
                        "| evaluate_base | 1 | 7.5 | 7.5 | 800 | yes |",
                        "| erase esd_x | 2 | 140.3 | 80.3 | 950 | yes |",
                        "| erase uce | 1 | 2.0 | 2.0 | 700 | yes |",
                        "| attack cce | 1 | 30.0 | 30.0 | 5000 | **no** |",
                        "| **all** | 6 | 183.8 | | 5000 | |"]
    assert "Total wall time of the 6 recorded stages: 183.8 s" in section
    assert "untracked" in section and "DVC cache" in section and "2 file(s)" in section
    assert "![per-stage cost](cost.png)" in section
    assert (with_cost / "cost.png").read_bytes()[:4] == b"\x89PNG"
    assert not (without / "cost.png").exists() and SECTION_TITLE not in (without / "report.md").read_text()

    page = (with_cost / "index.html").read_text()
    assert f"<h2>{SECTION_TITLE}{TAG}</h2>" in page and "<td>erase esd_x</td><td>2</td><td>140.3</td>" in page
    assert page.index(f"<h2>{SECTION_TITLE}{TAG}</h2>") > page.index(f"<h2>Samples{TAG}</h2>")
    assert page.count("data:image/png;base64,") == (without / "index.html").read_text().count("data:image/png;base64,") + 1


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_missing_timings_folder_is_one_line(inputs, state):
    timings = inputs[1] / "logs" / "stages"
    if state == "empty":
        timings.mkdir(parents=True)
    out = _build(inputs, "report", timings)
    section = (out / "report.md").read_text().split(f"## {SECTION_TITLE}{TAG}\n", 1)[1]
    assert section.strip().count("\n") == 0 and section.startswith("No stage records under `")
    assert "logs/stages/" in section and not (out / "cost.png").exists()
    assert f"<h2>{SECTION_TITLE}{TAG}</h2><p>No stage records under <code>" in (out / "index.html").read_text()


def test_the_frontier_holds_the_methods_no_other_beats_on_both():
    from eraselab.report.figures import pareto_front

    points = {"none": (1.0, 1.0), "a": (0.9, 0.3), "b": (0.8, 0.4), "c": (0.5, 0.1), "d": (0.9, 0.5)}
    assert pareto_front(points) == ["c", "a", "none"]  # b is beaten by a on both, d by a on ASR at equal retention


def test_methods_at_one_place_share_one_frontier_label():
    from eraselab.report.figures import coincident_labels

    points = {"none": (1.0, 1.0), "sld": (1.0, 1.0), "neg": (0.99999, 1.0), "esd": (0.9, 0.2)}
    assert coincident_labels(points) == {(1.0, 1.0): "none, sld, neg", (0.9, 0.2): "esd"}


def test_strip_frames_show_each_images_verdict():
    from eraselab.report.build import CLEAR, SHOWS, image_grid

    images = np.zeros((3, 4, 4, 3), np.uint8)
    canvas = image_grid(images, 3, np.array([True, False, True]))
    assert tuple(canvas[0, 0]) == SHOWS and tuple(canvas[0, 6]) == CLEAR and tuple(canvas[0, 12]) == SHOWS
    assert tuple(canvas[1, 1]) == (0, 0, 0)  # the image itself is untouched
    assert tuple(image_grid(images, 3)[0, 0]) == (255, 255, 255)  # no verdicts: no frames


def test_metric_definitions_are_a_table_with_shared_rows():
    from eraselab.report.build import metric_definition_rows

    detector = {"detector": "judge", "classes": ["red"], "threshold": None}
    clip = {"formula": "scale * max(cos, 0)", "scale": 100.0}
    specs = {"concepts": {"red": {"detector": detector, "clip": clip},
                          "star": {"detector": {**detector, "classes": ["star"]}, "clip": clip}},
             "fid_kid": {"feature_extractor": "clip_image", "reference": "none/retain"}}
    rows = metric_definition_rows(specs)
    assert ["CLIP score", "red, star", "formula: scale * max(cos, 0); scale: 100.0"] in rows
    assert ["concept detector", "red", "detector: judge; classes: red; threshold: None"] in rows
    assert rows[-1] == ["FID / KID", "all", "feature_extractor: clip_image; reference: none/retain"]


def test_the_report_shows_only_its_profiles_ablation_rows(inputs):
    params, root = inputs[0], inputs[1]
    row = {"variant": "v", "changed": {"steps": 1}, "commit": "abc1234",
           "metrics": {"red": {"target_rate": 0.1, "heldout_rate": 0.2, "retention": 0.9}}}
    _json(root / "ablations" / "esd.json", {"method": "esd_x", "concepts": ["red"], "attack": "no_attack", "missing": [],
                                            "rows": [{**row, "profile": "smoke"}]})
    md = (_build(inputs, "report", None) / "report.md").read_text()
    assert "esd_x (esd" not in md and "None run with this profile." in md
    _json(root / "ablations" / "esd.json", {"method": "esd_x", "concepts": ["red"], "attack": "no_attack", "missing": [],
                                            "rows": [{**row, "profile": "smoke"}, {**row, "variant": "w", "profile": "default"}]})
    md = (_build(inputs, "report2", None) / "report.md").read_text()
    assert "esd_x (esd, profile default)" in md and "| w |" in md and "| v |" not in md
