"""Both engines run the pipeline end to end; their artifacts agree bit for bit.

The smoke profile (one `dvc repro`) checks the science: the model learns, erasure erases, the report is
built. The micro profile (tests/fixtures/profiles/micro.yaml: the same graph at the smallest sizes that
run) checks the engines' mechanics: Snakemake vs DVC, reruns, no-ops, push/pull, experiments.
"""

import json
import re
import subprocess

import pytest
import yaml

from conftest import MICRO, scratch_repo

pytestmark = pytest.mark.slow


def test_dvc_repro_builds_the_report(dvc_smoke_run):
    metrics = json.loads((dvc_smoke_run / "reports" / "metrics.json").read_text())
    accuracy = metrics["base_model"]["accuracy"]
    assert set(accuracy) == {"shape", "colour", "texture"}
    assert all(0.0 <= v <= 1.0 for v in accuracy.values())
    assert min(metrics["judge"]["heldout_accuracy"].values()) >= 0.95
    for name in ("index.html", "report.md", "grid.png", "loss.png", "accuracy.png"):
        assert (dvc_smoke_run / "reports" / name).stat().st_size > 0


def test_grid_cells_are_reported(dvc_smoke_run):
    """Every declared cell lands in reports/metrics.json as grid.<method>.<concept>.<attack>.<metric>."""
    cell = json.loads((dvc_smoke_run / "reports" / "metrics.json").read_text())["grid"]["none"]["red"]["no_attack"]
    assert set(cell) == {"target_rate", "heldout_rate", "pre_asr", "asr", "retention", "clip", "variants_rate",
                         "variants_by_family", "n"}
    # n: the sizes the intervals are computed from, one per rate
    assert set(cell["n"]) == {"target_train", "target_heldout", "retain", "variants", "attack_seeds"}
    assert all(isinstance(v, int) and v >= 0 for v in cell["n"].values())
    assert cell["n"]["target_train"] > 0 and cell["n"]["attack_seeds"] > 0
    # the natural variants: scored only where the undefended model shows them, per family summing to the whole
    families = cell["variants_by_family"]
    assert sum(f["n"] for f in families.values()) == cell["n"]["variants"]
    if cell["n"]["variants"]:
        assert 0.0 <= cell["variants_rate"] <= 1.0
    else:
        assert cell["variants_rate"] is None
    assert cell["asr"] == cell["pre_asr"]  # no attack adds nothing to what the model already shows
    assert cell["target_rate"] >= SMOKE_COLOUR_FLOOR  # the unmodified model draws red when asked


def test_erasure_and_attack_act_in_the_smoke_grid(dvc_smoke_run):
    """ESD-x lowers the concept it erases; the white-box attack never lowers what the model shows."""
    grid = json.loads((dvc_smoke_run / "reports" / "metrics.json").read_text())["grid"]
    assert grid["esd_x"]["red"]["no_attack"]["target_rate"] < grid["none"]["red"]["no_attack"]["target_rate"]
    for method in grid:
        cell = grid[method]["red"]["unlearndiffatk"]
        assert cell["asr"] >= cell["pre_asr"]


def test_changing_one_param_reruns_exactly_its_stages(dvc_micro_run):
    params = dvc_micro_run / "params.yaml"
    original = params.read_text()
    changed = yaml.safe_load(original)
    changed["generate"]["steps"] += 1
    try:
        params.write_text(yaml.safe_dump(changed, sort_keys=False))
        out = subprocess.run(["dvc", "repro"], cwd=dvc_micro_run, capture_output=True, text=True, check=True).stdout
    finally:
        params.write_text(original)
        # back to the original params: DVC's run-cache restores those outputs without recomputing
        restored = subprocess.run(["dvc", "repro"], cwd=dvc_micro_run, capture_output=True, text=True, check=True).stdout
    stages = set(re.findall(r"Running stage '([^']+)'", out))
    from eraselab.graph import jobs
    from eraselab.params import load_params

    every = {job.name: job for job in jobs(load_params(params))}
    # sampling changed: every image-making stage and what reads it; no training, no erasure, no defence-blind
    # search (it samples nothing), no prompt set
    untouched = {"world", "base_model", "judge", "clip", "prompts", "concept_prompts", "search", "erase"}
    assert stages == {name for name, job in every.items() if job.kind not in untouched}
    # back to the original params: only `check` runs again (its fingerprints are not cached); DVC's run-cache
    # restores every other output without recomputing
    assert set(re.findall(r"Running stage '([^']+)'", restored)) == {"check"}
    assert "is cached - skipping run" in restored


def test_smoke_model_learns_colour(dvc_smoke_run):
    """The CI-size model follows colour words on held-out phrasings well above chance (1/5)."""
    metrics = json.loads((dvc_smoke_run / "reports" / "metrics.json").read_text())
    assert metrics["base_model"]["accuracy"]["colour"] >= SMOKE_COLOUR_FLOOR


def test_report_is_self_contained(dvc_smoke_run):
    page = (dvc_smoke_run / "reports" / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and page.count("data:image/png;base64,") >= 3


def test_dvc_exp_show_lists_params_and_metrics(dvc_micro_run):
    out = subprocess.run(["dvc", "exp", "show", "--csv", "--no-pager"], cwd=dvc_micro_run, capture_output=True,
                         text=True, check=True).stdout
    header = [column.split(":")[-1] for column in out.splitlines()[0].split(",")]  # first column keeps its file
    # metrics/summary.json is the one metrics file: the base model's accuracy and each method's means
    for metric in ("base_model.accuracy.shape", "base_model.accuracy.colour", "base_model.accuracy.texture",
                   "methods.esd_x.worst_asr", "methods.esd_x.asr.unlearndiffatk"):
        assert metric in header
    assert "base_model.train.steps" in header and "world.n_train" in header


def test_noop_repro_and_status(dvc_micro_run):
    out = subprocess.run(["dvc", "repro"], cwd=dvc_micro_run, capture_output=True, text=True, check=True).stdout
    assert "didn't change" in out or "up to date" in out.lower()
    assert "Running stage" not in out


def test_snakemake_builds_identical_artifacts(dvc_micro_run, tmp_path):
    """Same params, same threads: Snakemake's artifacts equal DVC's bit for bit, so DVC then has nothing to do."""
    repo = scratch_repo(tmp_path / "repo", MICRO)
    result = subprocess.run(["snakemake", "--cores", "2", "reports/"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    for path in ("models/base/unet/diffusion_pytorch_model.safetensors", "models/judge/judge.safetensors",
                 "metrics/base_model.json", "data/generated/base/images/00000.png", "reports/metrics.json",
                 "metrics/summary.json"):
        assert (repo / path).read_bytes() == (dvc_micro_run / path).read_bytes(), path
    # With DVC's lock beside them, Snakemake's outputs hash exactly as DVC's (all but reports/, whose
    # report.md, index.html and cost.png show each run's own untracked stage timings; its metrics.json is
    # compared above): the only difference DVC reports is that its own cache does not hold them yet
    # (checked before the workspace hash); `dvc commit` stores them, nothing reruns.
    (repo / "dvc.lock").write_text((dvc_micro_run / "dvc.lock").read_text())
    status = json.loads(subprocess.run(["dvc", "status", "--json"], cwd=repo, capture_output=True, text=True,
                                       check=True).stdout)
    for stage, changes in status.items():
        for change in changes:
            for kind, paths in (change.items() if isinstance(change, dict) else [("?", {change: change})]):
                assert kind == "changed outs" and set(paths.values()) == {"not in cache"}, (stage, change)
    subprocess.run(["dvc", "commit", "-f", "-q"], cwd=repo, check=True)
    dry = subprocess.run(["dvc", "repro", "--dry"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "Running stage" not in dry, dry

    # A bad params.yaml costs Snakemake's user no artifact either: core keys fail as the Snakefile is read,
    # methods' and attacks' blocks and external inputs in `onstart`, before any job removes its output.
    erased = repo / "models" / "erased" / "esd_x" / "red"
    before = _tree(erased)
    for change, message in ((_typo_in_a_changed_method, r"erase.esd_x.lrr: unknown key"),
                            (lambda d: d["grid"].update(concepts=["blu"]), r"grid.concepts: 'blu' is not in the world")):
        original = _break_params(repo, change)
        try:
            bad = subprocess.run(["snakemake", "--cores", "2", "reports/"], cwd=repo, capture_output=True, text=True)
        finally:
            (repo / "params.yaml").write_text(original)
        assert bad.returncode == 2 and re.search(rf"eraselab: params.yaml line \d+: {message}", bad.stderr), bad.stderr[-2000:]
        assert "Traceback" not in bad.stderr and _tree(erased) == before


def _tree(folder):
    import hashlib

    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _break_params(repo, change):
    """params.yaml with ``change`` applied; returns the original text."""
    original = (repo / "params.yaml").read_text()
    data = yaml.safe_load(original)
    change(data)
    (repo / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return original


def _typo_in_a_changed_method(data):  # esd_x's jobs are out of date, and its block has a typo
    data["erase"]["esd_x"]["steps"] += 1
    data["erase"]["esd_x"]["lrr"] = 0.1


def test_a_bad_params_yaml_costs_no_artifact_under_dvc(dvc_micro_run):
    erased = dvc_micro_run / "models" / "erased" / "esd_x" / "red"
    before = _tree(erased)
    original = _break_params(dvc_micro_run, _typo_in_a_changed_method)
    try:
        result = subprocess.run(["dvc", "repro"], cwd=dvc_micro_run, capture_output=True, text=True)
    finally:
        (dvc_micro_run / "params.yaml").write_text(original)
    assert result.returncode != 0
    assert re.search(r"eraselab check: params.yaml line \d+: erase.esd_x.lrr: unknown key; valid keys here: steps, lr",
                     result.stdout + result.stderr)
    assert "Running stage 'erase." not in result.stdout
    assert _tree(erased) == before  # the `check` stage stopped DVC before it removed any output
    status = subprocess.run(["dvc", "status"], cwd=dvc_micro_run, capture_output=True, text=True, check=True).stdout
    assert "up to date" in status, status


SMOKE_COLOUR_FLOOR = 0.5


def test_push_pull_round_trip_needs_no_recompute(dvc_micro_run, tmp_path):
    """A local-directory remote: push from one checkout, pull into a fresh clone, nothing left to run."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    remote = tmp_path / "remote"
    subprocess.run(["dvc", "remote", "add", "-f", "-d", "local", str(remote)], cwd=dvc_micro_run, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dvc_micro_run, check=True)
    subprocess.run([*git, "commit", "-qm", "run"], cwd=dvc_micro_run, check=True)
    subprocess.run(["dvc", "push", "-q"], cwd=dvc_micro_run, check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(dvc_micro_run), str(clone)], check=True)
    subprocess.run(["dvc", "pull", "-q"], cwd=clone, check=True)
    assert (clone / "reports" / "metrics.json").read_bytes() == (dvc_micro_run / "reports" / "metrics.json").read_bytes()
    status = subprocess.run(["dvc", "status"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert "up to date" in status.lower(), status
    dry = subprocess.run(["dvc", "repro", "--dry"], cwd=clone, capture_output=True, text=True, check=True).stdout
    assert "Running stage" not in dry


def test_ablation_runs_variants_as_experiments_and_the_report_shows_them(dvc_micro_run):
    """`eraselab ablation` runs each variant as a `dvc exp run` on that method's cells only, collects
    `dvc exp show` into ablations/<name>.json, and the report renders it."""
    spec = dvc_micro_run / "ablations" / "esd_steps.yaml"
    spec.write_text("method: esd_x\nconcepts: [red]\nvariants:\n  steps-1: {steps: 1}\n")
    run = subprocess.run(["eraselab", "ablation", "--spec", str(spec)], cwd=dvc_micro_run, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(spec.with_suffix(".json").read_text())
    [row] = result["rows"]
    assert row["variant"] == "steps-1" and row["params"]["steps"] == 1 and result["missing"] == []
    assert 0.0 <= row["metrics"]["red"]["target_rate"] <= 1.0
    again = subprocess.run(["eraselab", "ablation", "--spec", str(spec), "--action", "dry"], cwd=dvc_micro_run,
                           capture_output=True, text=True, check=True).stdout
    assert "every variant has an experiment" in again  # nothing runs twice
    subprocess.run(["dvc", "repro", "report"], cwd=dvc_micro_run, capture_output=True, text=True, check=True)
    report = (dvc_micro_run / "reports" / "report.md").read_text()
    assert "esd_x (esd_steps, profile micro)" in report and "| steps-1 | steps=1 |" in report


def test_every_metrics_file_declares_its_metric(dvc_micro_run):
    """Numbers are comparable only under equal definitions: each cell and quality file carries its spec."""
    cells = sorted((dvc_micro_run / "metrics" / "cells").rglob("*.json"))
    assert cells
    for path in cells:
        spec = json.loads(path.read_text())["metric_spec"]
        assert spec["detector"]["detector"] == "judge" and spec["clip"]["formula"].startswith("scale * max(cos")
    quality = json.loads((dvc_micro_run / "metrics" / "quality" / "esd_x" / "red.json").read_text())
    assert quality["kid"] is not None and quality["spec"]["feature_extractor"] == "clip_image"
    assert quality["fid"] is None  # 6 images, 32-d features: FID is undefined and says so
    none = json.loads((dvc_micro_run / "metrics" / "quality" / "none" / "red.json").read_text())
    assert none["spec"]["reference"] == "none/retain" and none["n"]["a"] == none["n"]["b"] == quality["n"]["a"]
    assert "## Metric definitions" in (dvc_micro_run / "reports" / "report.md").read_text()
