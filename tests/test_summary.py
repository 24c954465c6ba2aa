"""metrics/summary.json: per-method means, the README's generated table, `eraselab compare`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from eraselab.report import summary as s

ROOT = Path(__file__).resolve().parents[1]


def cell(asr, pre=0.1, target=0.2):
    return {"asr": asr, "pre_asr": pre, "target_rate": target, "heldout_rate": 0.3, "retention": 0.9, "clip": 50.0}


GRID = {"none": {"red": {"no_attack": cell(1.0, 1.0, 1.0), "p4d_n": cell(1.0, 1.0, 1.0)},
                 "star": {"no_attack": cell(0.9, 0.9, 0.9), "p4d_n": cell(1.0, 0.9, 0.9)}},
        "esd_x": {"red": {"no_attack": cell(0.1), "p4d_n": cell(0.5)},
                  "star": {"no_attack": cell(0.3, 0.3), "p4d_n": cell(0.2, 0.3)}}}
QUALITY = {"none": {"red": {"fid": None, "kid": 0.0}, "star": {"fid": None, "kid": 0.0}},
           "esd_x": {"red": {"fid": 10.0, "kid": 0.002}, "star": {"fid": 20.0, "kid": -0.001}}}


def test_means_over_concepts_and_the_worst_case():
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    esd = out["methods"]["esd_x"]
    assert esd["asr"] == {"no_attack": 0.2, "p4d_n": 0.35}
    assert esd["worst_asr"] == 0.4  # red: max(0.1, 0.5); star: max(0.3, 0.2)
    assert esd["pre_asr"] == 0.2 and esd["fid"] == 15.0 and esd["kid"] == 0.0005
    assert out["methods"]["none"]["fid"] is None
    assert out["size"] == {"methods": 2, "concepts": 2, "attacks": 2, "cells": 8}
    assert out["grid"]["esd_x"]["star"]["p4d_n"]["asr"] == 0.2
    assert out["quality"]["esd_x"]["star"] == {"fid": 20.0, "kid": -0.001}
    assert "base_model" not in out  # a given model (no toy world): no base-model block


def test_the_toy_worlds_model_and_judge_are_summarised():
    toy = {"base_model": {"accuracy": {"shape": 0.9, "colour": 1.0}, "clip_score": 30.0},
           "judge": {"heldout_accuracy": {"shape": 1.0, "colour": 1.0}}}
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default", toy)
    assert out["base_model"] == {"accuracy": {"shape": 0.9, "colour": 1.0}}
    assert out["judge"] == {"heldout_accuracy": {"shape": 1.0, "colour": 1.0}}


def test_compare_marks_the_lowest_worst_case_and_fits_a_terminal():
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    show = [{"rev": "workspace", "data": {"metrics": {s.SUMMARY_FILE: {"data": out}}},
             "experiments": [{"revs": [{"rev": "abc", "name": "exp-1", "data": {"metrics": {s.SUMMARY_FILE: {"data": out}}}}]}]}]
    text = s.compare([], show)
    assert "workspace:" in text and "exp-1:" in text
    assert "esd_x *" in text and "none *" not in text
    assert max(len(line) for line in text.splitlines()) <= 120
    with pytest.raises(ValueError, match="exp-9.*experiments: workspace, exp-1"):
        s.compare(["exp-9"], show)
    # `dvc exp show --json` drops null metrics (none's FID): the table still prints, with a dash
    dropped = json.loads(json.dumps(out))
    del dropped["methods"]["none"]["fid"]
    shown = [{"rev": "workspace", "data": {"metrics": {s.SUMMARY_FILE: {"data": dropped}}}, "experiments": None}]
    assert "none" in s.compare([], shown)


def test_headline_names_the_defence_with_the_lowest_worst_case():
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    text = s.headline(out)
    assert "**esd_x**'s, 0.40" in text and "undefended `none`: worst-case ASR 1.00" in text


def test_headline_names_the_methods_that_move_with_the_training_seed():
    steady = {c: {"target_rate": 0.2, "heldout_rate": 0.3, "retention": 0.9} for c in GRID["esd_x"]}  # as seed 0
    assert "training seeds" not in s.headline(s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default"))
    calm = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default", seeds={"esd_x": {1: steady}})
    assert "every trained method's target rate stays within" in s.headline(calm)
    moved = {c: {**steady, "target_rate": 0.9} for c in GRID["esd_x"]}
    loose = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default", seeds={"esd_x": {1: moved, 2: moved}})
    text = s.headline(loose)
    assert "moves with the seed for **esd_x** (0.67 ± 0.40): its single-seed" in text and text.startswith("Profile `default`")


def test_readme_block_is_replaced_and_checked():
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default")
    text = f"intro\n{s.README_START}\nold\n{s.README_END}\nrest\n"
    new = s.replace_readme_block(text, out)
    assert new.startswith("intro\n") and new.endswith("rest\n") and "| esd_x | 0.20 |" in new
    with pytest.raises(ValueError, match="README.md: no"):
        s.replace_readme_block("no markers", out)
    assert "Training seeds" not in new  # no extra seeds ran: no seeds table


def test_readme_block_gives_training_seeds_as_mean_and_sd():
    seeds = {"esd_x": {1: {c: {"target_rate": 0.4, "heldout_rate": 0.4, "retention": 0.9, "variants_rate": 0.3}
                           for c in GRID["esd_x"]}}}
    out = s.build_summary(GRID, QUALITY, ["no_attack", "p4d_n"], "default", seeds=seeds)
    block = s.readme_block(out)
    row = next(line for line in block.splitlines() if line.startswith("| esd_x | 2 |"))
    spread = out["seeds"]["esd_x"]["target_rate"]
    assert f"{spread['mean']:.2f} ± {spread['sd']:.2f}" in row and spread["sd"] > 0
    assert block.index("Training seeds") > block.index("| esd_x | 0.20 |")  # after the grid table


def test_the_readme_table_is_generated_from_the_tracked_summary():
    """README.md's results table equals what `eraselab readme` writes from the committed metrics/summary.json."""
    summary = json.loads((ROOT / s.SUMMARY_FILE).read_text())
    readme = (ROOT / "README.md").read_text()
    assert s.replace_readme_block(readme, summary) == readme
    assert summary["profile"] == "default" and summary["size"]["cells"] > 100
    result = subprocess.run(["eraselab", "readme", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_summary_is_tracked_in_git_and_shown_by_dvc(dvc_micro_run):
    """metrics/summary.json: the micro profile named, every cell of reports/metrics.json, per-method means; it is
    a git file (DVC `cache: false`), the per-cell files are DVC-cached, and `dvc metrics show` lists the
    summary only."""
    summary = json.loads((dvc_micro_run / "metrics" / "summary.json").read_text())
    grid = json.loads((dvc_micro_run / "reports" / "metrics.json").read_text())["grid"]
    quality = json.loads((dvc_micro_run / "metrics" / "quality" / "esd_x" / "red.json").read_text())
    assert summary["profile"] == "micro" and "commit" not in summary  # a function of its inputs alone
    assert set(summary["base_model"]["accuracy"]) == {"shape", "colour", "texture"}
    assert summary["size"]["cells"] == sum(len(a) for c in grid.values() for a in c.values())
    assert summary["grid"]["esd_x"]["red"]["unlearndiffatk"]["asr"] == round(grid["esd_x"]["red"]["unlearndiffatk"]["asr"], 4)
    assert summary["methods"]["none"]["worst_asr"] == round(max(a["asr"] for a in grid["none"]["red"].values()), 4)
    assert summary["quality"]["esd_x"]["red"]["kid"] == round(quality["kid"], 6)
    ignored = lambda path: subprocess.run(["git", "check-ignore", "-q", path], cwd=dvc_micro_run).returncode == 0  # noqa: E731
    assert not ignored("metrics/summary.json")  # a git file
    assert ignored("metrics/cells/esd_x/red/no_attack.json") and ignored("metrics/quality/esd_x/red.json")
    assert "metrics/summary.json" in (dvc_micro_run / "dvc.lock").read_text()
    shown = subprocess.run(["dvc", "metrics", "show", "--json"], cwd=dvc_micro_run, capture_output=True, text=True,
                           check=True).stdout
    assert "metrics/summary.json" in shown and "metrics/cells" not in shown


@pytest.mark.slow
def test_training_seeds_retrain_each_seeded_method_and_the_summary_spreads_them(dvc_micro_run, tmp_path):
    """grid.train_seeds adds one `seeds` job per seeded method, concept and extra seed (not for `none`);
    each re-erases, renders and scores (SteerDiff's identifier and ESD-x's weights: two kinds of artifact
    that must load), and summary.json and the report give each metric's mean and sd over the seeds."""
    import shutil

    import yaml

    repo = tmp_path / "repo"
    shutil.copytree(dvc_micro_run, repo, symlinks=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["grid"]["methods"] = ["none", "esd_x", "steerdiff"]
    params["grid"]["train_seeds"] = [1]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["eraselab", "graph"], ["dvc", "repro"]):
        result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = sorted(p.relative_to(repo / "metrics" / "seeds").as_posix() for p in (repo / "metrics" / "seeds").rglob("*.json"))
    assert jobs == ["esd_x/red/seed1.json", "steerdiff/red/seed1.json"]
    seed1 = json.loads((repo / "metrics" / "seeds" / "esd_x" / "red" / "seed1.json").read_text())
    assert 0.0 <= seed1["target_rate"] <= 1.0 and seed1["n"]["target_train"] > 0
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert set(summary["seeds"]) == {"esd_x", "steerdiff"}
    for row in summary["seeds"].values():
        assert row["n_seeds"] == 2
        assert row["target_rate"]["sd"] >= 0.0 and 0.0 <= row["target_rate"]["mean"] <= 1.0
    own = summary["grid"]["esd_x"]["red"]["no_attack"]["target_rate"]
    assert summary["seeds"]["esd_x"]["target_rate"]["mean"] == pytest.approx((own + seed1["target_rate"]) / 2, abs=1e-4)
    assert "Training seeds" in (repo / "reports" / "report.md").read_text()
