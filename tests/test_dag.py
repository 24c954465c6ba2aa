"""dvc.yaml and the Snakefile must describe the same graph: stages, commands, inputs and outputs."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def dvc_graph() -> dict[str, dict]:
    """Resolved DVC stages (matrix cells expanded), keyed by stage name, e.g. erase@none-red."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = {s.addressing: {"cmd": s.cmd, "deps": [d.def_path for d in s.deps if not d.def_path.endswith(".yaml")],
                                 "outputs": {o.def_path for o in s.outs}} for s in repo.index.stages}
    produced = {out for stage in stages.values() for out in stage["outputs"]}
    graph = {}
    for name, stage in stages.items():
        inputs = set()
        for dep in stage["deps"]:
            p = ROOT / dep
            if p.is_dir() and dep.startswith("src/"):  # DVC names code folders; Snakemake lists their files
                inputs |= {str(f.relative_to(ROOT)) for f in p.rglob("*.py")}
            elif dep not in produced and any(o.startswith(dep + "/") for o in produced):
                inputs |= {o for o in produced if o.startswith(dep + "/")}  # a folder of other stages' outputs
            else:
                inputs.add(dep)
        graph[name] = {"cmd": stage["cmd"], "inputs": inputs, "outputs": stage["outputs"]}
    return graph


def snakemake_graph() -> dict[str, dict]:
    out = subprocess.run(["snakemake", "--dry-run", "--forceall", "--printshellcmds", "--cores", "1"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    graph = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", out):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not rule or rule.group(1) == "all":
            continue
        field = lambda key: re.search(rf"^\s+{key}: (.*)$", block, re.M)  # noqa: E731
        cmd = re.search(r"^Shell command: (.*)$", block, re.M)
        wildcards = field("wildcards")
        # DVC names a matrix cell stage@value-value in the order the matrix lists its keys
        name = rule.group(1) + ("@" + "-".join(kv.split("=", 1)[1] for kv in wildcards.group(1).split(", "))
                                if wildcards else "")
        graph[name] = {"cmd": cmd.group(1).strip() if cmd else None,
                       "inputs": set(field("input").group(1).split(", ")) if field("input") else set(),
                       "outputs": set(field("output").group(1).split(", "))}
    return graph


@pytest.fixture(scope="module")
def graphs():
    return dvc_graph(), snakemake_graph()


def test_same_stages(graphs):
    dvc, smk = graphs
    assert set(dvc) == set(smk)


@pytest.mark.parametrize("stage", sorted(dvc_graph()))
def test_same_command_inputs_outputs(graphs, stage):
    dvc, smk = graphs
    assert dvc[stage]["cmd"] == smk[stage]["cmd"]
    assert dvc[stage]["inputs"] == smk[stage]["inputs"]
    assert dvc[stage]["outputs"] == smk[stage]["outputs"]


def test_every_command_is_one_cli_call(graphs):
    dvc, _ = graphs
    from eraselab.cli import COMMANDS

    for stage in dvc.values():
        words = stage["cmd"].split()
        assert words[0] == "eraselab" and words[1] in COMMANDS and not {"|", "&&", ";", ">"} & set(words)


def test_dvc_sees_the_same_graph():
    """`dvc dag` parses dvc.yaml (params, deps, outs) without error and lists every stage."""
    out = subprocess.run(["dvc", "dag", "--md"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for stage in dvc_graph():
        assert stage in out


@pytest.mark.parametrize("profile", ["smoke", "sd14"])
def test_every_profile_builds_its_graph_in_both_engines(profile, tmp_path):
    from conftest import scratch_repo

    repo = scratch_repo(tmp_path / "repo", profile)
    dag = subprocess.run(["dvc", "dag", "--md"], cwd=repo, capture_output=True, text=True)
    assert dag.returncode == 0 and "report" in dag.stdout, dag.stderr
    dry = subprocess.run(["snakemake", "--dry-run", "--cores", "1", "reports/"], cwd=repo, capture_output=True, text=True)
    assert dry.returncode == 0 and "report" in dry.stdout, dry.stderr[-2000:]
