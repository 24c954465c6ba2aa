"""Ablation specs: checked before any experiment runs; `dvc exp show` rows become the report's table."""

from pathlib import Path

import pytest

from eraselab.params import ParamsError
from eraselab.report import ablation
from eraselab.report.build import ablation_tables

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "abl.yaml"
    path.write_text(text)
    return path


def test_shipped_specs_are_valid():
    specs = sorted((ROOT / "ablations").glob("*.yaml"))
    assert specs
    for path in specs:
        spec = ablation.load_spec(path)
        assert spec.variants


def test_unknown_method_lists_the_valid_ones(tmp_path):
    with pytest.raises(ParamsError, match="valid choices: advunlearn, darkminer, esd_u, esd_x"):
        ablation.load_spec(write(tmp_path, "method: esd_z\nconcepts: [red]\nvariants: {a: {}}\n"))


def test_unknown_param_names_the_variant_and_key(tmp_path):
    with pytest.raises(ParamsError, match=r"(?s)variant eps.*erase\.steerdiff\.epsilom.*valid keys here: .*epsilon"):
        ablation.load_spec(write(tmp_path, "method: steerdiff\nconcepts: [red]\nvariants: {eps: {epsilom: 2}}\n"))


def test_missing_spec_lists_the_available_ones(tmp_path):
    (tmp_path / "other.yaml").write_text("")
    with pytest.raises(ParamsError, match="available: other.yaml"):
        ablation.load_spec(tmp_path / "nope.yaml")


def test_variants_become_dvc_set_params_on_the_methods_cells(tmp_path):
    path = write(tmp_path, "method: steerdiff\nconcepts: [red, star]\nvariants: {w: {widen_word: false, epsilon: 2.0}}\n")
    spec = ablation.load_spec(path)
    assert ablation.targets(spec) == ["evaluate.steerdiff.red", "evaluate.steerdiff.star"]
    assert ablation._set_args(spec, spec.variants["w"]) == ["-S", "erase.steerdiff.widen_word=false",
                                                            "-S", "erase.steerdiff.epsilon=2.0"]


def test_run_skips_variants_with_an_experiment_on_any_commit_unless_rerun(tmp_path, monkeypatch):
    import subprocess

    path = write(tmp_path, "method: steerdiff\nconcepts: [red]\nvariants: {a: {epsilon: 1.0}, b: {epsilon: 3.0}}\n")
    asked = []

    def fake_run(cmd, **kwargs):
        asked.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="abl-a\nother-x\n")

    monkeypatch.setattr(ablation.subprocess, "run", fake_run)
    pending = ablation.run(path, dry=True)
    assert asked == [["dvc", "exp", "ls", "--all-commits", "--name-only"]]  # experiments of older commits count
    assert [c[c.index("-n") + 1] for c in pending] == ["abl-b"]
    every = ablation.run(path, dry=True, rerun=True)
    assert [c[c.index("-n") + 1] for c in every] == ["abl-a", "abl-b"] and len(asked) == 1


def show_json(name: str, epsilon: float, target: float) -> list[dict]:
    """The shape of `dvc exp show --json` (DVC 3): baselines, each with experiments and their revs."""
    cell = {"target_rate": target, "heldout_rate": target / 2, "retention": 0.9, "clip": 80.0, "asr": 1.0}
    data = {"params": {"params.yaml": {"data": {"erase": {"steerdiff": {"epsilon": epsilon}}}}},
            "metrics": {"metrics/cells/steerdiff/red/no_attack.json": {"data": cell}}}
    return [{"rev": "workspace", "name": None, "data": data, "error": None, "experiments": None},
            {"rev": "abc", "name": "main", "data": data, "error": None,
             "experiments": [{"revs": [{"rev": "def", "name": name, "data": data, "error": None, "experiments": None}],
                              "executor": None, "name": name}]}]


def test_collected_rows_carry_params_and_metrics_and_render(tmp_path):
    path = write(tmp_path, "method: steerdiff\nconcepts: [red]\nvariants: {eps-2: {epsilon: 2.0}, eps-3: {epsilon: 3.0}}\n")
    spec = ablation.load_spec(path)
    rows = ablation.rows_from_show(spec, path, show_json("abl-eps-2", 2.0, 0.25))
    assert [r["variant"] for r in rows] == ["eps-2"]  # eps-3 has no experiment yet
    assert rows[0]["params"]["epsilon"] == 2.0 and rows[0]["metrics"]["red"]["target_rate"] == 0.25
    result = {"method": "steerdiff", "concepts": ["red"], "attack": "no_attack", "rows": rows, "missing": ["eps-3"]}
    (tmp_path / "abl.json").write_text(__import__("json").dumps(result))
    [(title, md, page)] = ablation_tables(tmp_path)
    assert "not run yet: eps-3" in title
    assert "| eps-2 | epsilon=2.0 | abc | 0.250 | 0.125 | 0.900 |" in md and "<td>eps-2</td>" in page


def test_a_running_experiment_is_not_collected(tmp_path):
    """`dvc exp show` lists a running experiment with its baseline's metrics: it is not a result yet."""
    path = write(tmp_path, "method: steerdiff\nconcepts: [red]\nvariants: {eps-2: {epsilon: 2.0}}\n")
    show = show_json("abl-eps-2", 2.0, 0.25)
    show[1]["experiments"][0]["executor"] = {"state": "running", "name": "tempdir", "local": None}
    assert ablation.rows_from_show(ablation.load_spec(path), path, show) == []
    show[1]["experiments"][0]["executor"] = None  # finished
    assert len(ablation.rows_from_show(ablation.load_spec(path), path, show)) == 1


def test_the_newest_baseline_wins_when_a_variant_ran_twice(tmp_path):
    path = write(tmp_path, "method: steerdiff\nconcepts: [red]\nvariants: {eps-2: {epsilon: 2.0}}\n")
    newer, older = show_json("abl-eps-2", 2.0, 0.1), show_json("abl-eps-2", 2.0, 0.4)
    newer[1]["rev"], older[1]["rev"] = "new0000", "old0000"
    [row] = ablation.rows_from_show(ablation.load_spec(path), path, newer + older[1:])
    assert row["commit"] == "new0000" and row["metrics"]["red"]["target_rate"] == 0.1


def test_a_failing_dvc_call_is_one_line_naming_it_not_a_traceback(tmp_path, monkeypatch, capsys):
    import subprocess

    from eraselab import cli

    path = write(tmp_path, "method: steerdiff\nconcepts: [red]\nvariants: {a: {epsilon: 1.0}}\n")

    def failing(cmd, **kwargs):
        raise subprocess.CalledProcessError(253, cmd, stderr="ERROR: you are not inside of a DVC repository")

    monkeypatch.setattr(ablation.subprocess, "run", failing)
    assert cli.main(["ablation", "--spec", str(path), "--action", "run"]) == 253
    err = capsys.readouterr().err
    assert "`dvc exp ls --all-commits --name-only` failed (exit 253)" in err and "not inside of a DVC" in err
    assert "Traceback" not in err
