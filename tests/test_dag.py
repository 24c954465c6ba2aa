"""One declaration, two engines: dvc.yaml is generated and current, Snakemake builds the same jobs, and
each job's code dependencies are exactly the files its code imports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from eraselab import graph
from eraselab.params import load_params

ROOT = Path(__file__).resolve().parents[1]


def dvc_stages(repo: Path) -> dict[str, dict]:
    """dvc.yaml's stages as DVC resolves them: command, deps (a job's key expanded to the files its code
    units list), outputs, params keys (from the job's key)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        out = {}
        for s in r.index.stages:
            deps, params = set(), set()
            for d in s.deps:
                if d.def_path.endswith(".yaml"):
                    params |= set(getattr(d, "params", None) or ["*"])
                elif d.def_path.startswith(graph.paths.FINGERPRINTS + "/jobs/"):
                    for line in (repo / d.def_path).read_text().splitlines():
                        kind, _, rest = line.partition(" ")
                        if kind == "unit":
                            unit = (repo / graph.paths.fingerprint(rest.split()[0])).read_text()
                            deps |= {row.split("  ", 1)[1] for row in unit.splitlines()}
                        elif kind == "param":
                            params.add(rest.split(" ", 1)[0])
                else:
                    deps.add(d.def_path)
            out[s.name] = {"cmd": s.cmd, "deps": deps, "outs": {o.def_path for o in s.outs}, "params": params}
    return out


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def snakemake_jobs(repo: Path) -> dict[str, dict]:
    """Every job of `snakemake --dry-run --forceall`, named as DVC names it (kind.key.key)."""
    out = subprocess.run(["snakemake", "--dry-run", "--forceall", "--printshellcmds", "--cores", "1"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    jobs = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", out):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not rule or rule.group(1) == "all":
            continue
        field = lambda key: re.search(rf"^\s+{key}: (.*)$", block, re.M)  # noqa: E731
        wildcards = dict(kv.split("=", 1) for kv in field("wildcards").group(1).split(", ")) if field("wildcards") else {}
        keys = graph.stage_module(rule.group(1)).KEYS
        name = ".".join([rule.group(1), *(wildcards[k] for k in keys)])
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs[name] = {"cmd": shell.group(1).strip() if shell else None,
                      "deps": set(field("input").group(1).split(", ")) if field("input") else set(),
                      "outs": set(field("output").group(1).split(", "))}
    return jobs


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    from conftest import MICRO, scratch_repo

    return scratch_repo(tmp_path_factory.mktemp("dag") / "repo", MICRO)


def test_dvc_yaml_and_fingerprints_are_current():
    """The checked-in dvc.yaml is what `eraselab graph` writes for params.yaml, every fingerprint lists
    its unit's files with their current hashes, and every job's key holds its units' digests and params."""
    graph.check_dvc_yaml(ROOT / "params.yaml", ROOT / "dvc.yaml")
    params, raw = load_params(ROOT / "params.yaml"), yaml.safe_load((ROOT / "params.yaml").read_text())
    wanted = graph.fingerprint_files(params, raw, ROOT)
    found = {p.relative_to(ROOT).as_posix() for p in (ROOT / graph.paths.FINGERPRINTS).rglob("*.txt")}
    assert found == set(wanted)
    for rel, text in wanted.items():
        assert (ROOT / rel).read_text() == text, rel
    key = (ROOT / graph.paths.job_key("erase.esd_x.red")).read_text()
    assert f"param erase.esd_x {json.dumps(raw['erase']['esd_x'], sort_keys=True)}" in key.splitlines()


@pytest.mark.parametrize("repo", ["root", "micro"])
def test_both_engines_run_the_same_jobs(repo, micro):
    """Same jobs, commands, inputs (code files included) and outputs; same params keys per job."""
    path = ROOT if repo == "root" else micro
    dvc, smk = dvc_stages(path), snakemake_jobs(path)
    assert set(dvc) - {"check"} == set(smk)  # `check` writes the keys DVC reads; Snakemake reads files
    outputs = {o for job in smk.values() for o in job["outs"]}
    for name, job in smk.items():
        assert dvc[name]["cmd"] == job["cmd"], name
        assert dvc[name]["outs"] == job["outs"], name
        # DVC may name a folder where the job reads every graph output under it; nothing more, nothing less
        assert all(any(_under(d, f) for f in dvc[name]["deps"]) for d in job["deps"]), name
        for folder in dvc[name]["deps"] - job["deps"]:
            under = {o for o in outputs if _under(o, folder)}
            assert len(under) >= 2 and under <= job["deps"], (name, folder)
    config = yaml.safe_load((path / "params.yaml").read_text())
    rules = graph.SnakemakeRules(config, path)
    for name, stage in dvc.items():
        kind, *values = name.split(".")
        if kind == "check":
            assert stage["params"] == {"*"}
            continue
        wildcards = dict(zip(graph.stage_module(kind).KEYS, values))
        assert set(rules.param_values(kind)(wildcards)) == stage["params"], name


def test_snakemake_output_patterns_carry_every_key_or_refuse():
    """A key's value inside a file name (`seeds`: seed1.json) becomes a wildcard too; a job whose outputs do
    not follow its kind's patterns is an error naming it, not a rule that silently lacks a key."""
    import dataclasses

    from eraselab.stages import Out

    config = yaml.safe_load((ROOT / "params.yaml").read_text())
    config["grid"]["train_seeds"] = [1, 2]
    rules = graph.SnakemakeRules(config, ROOT)
    assert rules.outputs("seeds") == [("metrics/seeds/{method}/{concept}/seed{seed}.json", False)]
    assert rules.outputs("attack") == [("data/attacks/{method}/{concept}/{attack}", True)]
    key, job = list(rules.by_kind["seeds"].items())[-1]  # not the template the patterns come from
    rules.by_kind["seeds"][key] = dataclasses.replace(job, outs=[Out("metrics/seeds/elsewhere.json", directory=False)])
    with pytest.raises(ValueError, match=rf"stage {re.escape(job.name)}: its outputs"):
        rules.outputs("seeds")


def test_every_command_is_one_cli_call_naming_only_its_keys():
    from eraselab.cli import build_parser

    parser = build_parser()
    for job in graph.jobs(load_params(ROOT / "params.yaml")):
        words = job.cmd.split()
        assert words[0] == "eraselab" and not {"|", "&&", ";", ">"} & set(words)
        args = parser.parse_args(words[1:])
        assert {k: getattr(args, k) for k in job.keys} == job.keys


def test_a_method_s_params_are_read_by_its_own_jobs_only():
    """erase.<method> is read by that method's erase jobs and, for a trained one, its training-seed jobs."""
    from eraselab.stages.seeds import extra_seeds, seeded_methods

    params, raw = load_params(ROOT / "params.yaml"), yaml.safe_load((ROOT / "params.yaml").read_text())
    assert seeded_methods(params)  # the default grid retrains its trained methods with other seeds
    for method in params.grid.methods:
        readers = {job.name for job in graph.jobs(params) if f"erase.{method}" in graph.declared_params(job, raw)}
        seeds = {f"seeds.{method}.{c}.{s}" for c in params.grid.concepts for s in extra_seeds(params, method)
                 if method in seeded_methods(params)}
        assert readers == {f"erase.{method}.{c}" for c in params.grid.concepts} | seeds
    for attack in params.grid.attacks:
        readers = {job.name for job in graph.jobs(params) if f"attack.{attack}" in graph.declared_params(job, raw)}
        assert readers and all(attack in job.split(".") for job in readers), readers


def test_profiles_pick_the_graph():
    from eraselab.params import load_profile

    sd14 = {job.kind for job in graph.jobs(load_profile(ROOT / "profiles" / "sd14.yaml"))}
    assert not sd14 & {"world", "base_model", "judge", "clip", "prompts", "generate", "evaluate_base"}
    toy = graph.jobs(load_params(ROOT / "params.yaml"))
    assert not any("hub" in " ".join(job.deps) for job in toy)


def test_defence_blind_searches_run_once_per_concept():
    params = load_params(ROOT / "params.yaml")
    jobs = graph.jobs(params)
    searches = {job.name for job in jobs if job.kind == "search"}
    blind = ("no_attack", "ring_a_bell", "mma_diffusion")
    assert searches == {f"search.{a}.{c}" for a in blind for c in params.grid.concepts}
    assert not any(job.kind == "attack" and job.keys["attack"] in blind for job in jobs)
    assert {job.name for job in jobs if job.kind == "targets"} == {f"targets.{c}" for c in params.grid.concepts}


def _dry_run_jobs(repo: Path) -> dict[str, str]:
    """Every job a Snakemake dry-run would run, with its reason."""
    out = subprocess.run(["snakemake", "--dry-run", "--cores", "1", "reports/"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    jobs = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", out):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule and rule.group(1) != "all":
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            values = dict(kv.split("=", 1) for kv in wildcards.group(1).split(", ")) if wildcards else {}
            name = ".".join([rule.group(1), *(values[k] for k in graph.stage_module(rule.group(1)).KEYS)])
            jobs[name] = re.search(r"^\s+reason: (.*)$", block, re.M).group(1)
    return jobs


def _downstream(jobs: list, names: set[str]) -> set[str]:
    """``names`` and every job that reads, directly or not, what they write."""
    out = set(names)
    while True:
        written = [o.path for job in jobs if job.name in out for o in job.outs]
        more = {job.name for job in jobs if job.name not in out
                and any(d == w or d.startswith(w + "/") or w.startswith(d + "/") for d in job.deps for w in written)}
        if not more:
            return out
        out |= more


@pytest.mark.slow
def test_editing_any_module_marks_exactly_the_jobs_that_import_it(dvc_micro_run, tmp_path):
    """For every module under src/eraselab: append a comment. DVC (after `check` rewrote the fingerprints)
    marks exactly the jobs whose code imports that module. Snakemake (by mtime) reruns those for their own
    input and everything downstream of them (their inputs will be rewritten), and nothing else."""
    from dvc.repo import Repo

    repo = tmp_path / "repo"
    shutil.copytree(dvc_micro_run, repo, symlinks=True)
    params = load_params(repo / "params.yaml")
    jobs = graph.jobs(params)
    files = {job.name: set(graph.code_files(job, repo)) for job in jobs}
    modules = sorted(p.relative_to(repo).as_posix() for p in (repo / "src" / "eraselab").rglob("*.py"))
    assert len(modules) > 60
    for module in modules:
        path = repo / module
        original, stat = path.read_bytes(), path.stat()
        expected = {name for name, used in files.items() if module in used}
        try:
            path.write_bytes(original + b"\n# an edit\n")
            graph.write_fingerprints(params, repo)
            with Repo(str(repo)) as r:
                marked = {name.split(":")[-1] for name in r.status()} - {"check"}
            assert marked == expected, module
            dry = _dry_run_jobs(repo)
            assert {name for name, reason in dry.items() if reason.startswith("Updated input files")} <= expected
            assert set(dry) == _downstream(jobs, expected), module
        finally:
            path.write_bytes(original)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as before: older than every output
            graph.write_fingerprints(params, repo)


def test_a_new_method_adds_its_jobs_and_changes_no_existing_one(micro, tmp_path):
    """A method module plus its entry point (here from a separate distribution on the path, as a plugin
    package would register it) plus its params: new jobs appear; no existing job's definition, code
    inputs or fingerprint changes (the report reads every cell, so it gains the new ones)."""
    import os

    repo = tmp_path / "repo"
    shutil.copytree(micro, repo, symlinks=True)
    before = dvc_stages(repo)
    prints = {p.relative_to(repo).as_posix(): p.read_bytes() for p in (repo / graph.paths.FINGERPRINTS).rglob("*.txt")}
    source = (repo / "src/eraselab/erasure/none.py").read_text()
    (repo / "src/eraselab/erasure/mine.py").write_text(source.replace("class NoErasure", "class Mine")
                                                       .replace('name = "none"', 'name = "mine"'))
    dist = tmp_path / "site" / "mine_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mine-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[eraselab.methods]\nmine = eraselab.erasure.mine:Mine\n")
    config = yaml.safe_load((repo / "params.yaml").read_text())
    config["grid"]["methods"].append("mine")
    config["erase"]["mine"] = {}
    (repo / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(tmp_path / "site")])}
    subprocess.run(["eraselab", "graph"], cwd=repo, env=env, check=True, capture_output=True)
    after = dvc_stages(repo)
    added = set(after) - set(before)
    assert added == {"erase.mine.red", "defended.mine.red", "attack.mine.red.unlearndiffatk", "evaluate.mine.red"}
    changed = {name for name in before if after[name] != before[name]}
    assert changed <= {"report"}, changed  # under DVC the report reads folders, which now hold the new cells
    for name, data in prints.items():  # code fingerprints and job keys: only the report's key (grid.methods)
        assert ((repo / name).read_bytes() == data) == (name != graph.paths.job_key("report")), name
    assert (repo / graph.paths.fingerprint("method-mine")).exists()
    assert (repo / graph.paths.job_key("erase.mine.red")).exists()


def test_a_stale_dvc_yaml_stops_the_check_stage(micro, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(micro, repo, symlinks=True)
    config = yaml.safe_load((repo / "params.yaml").read_text())
    config["grid"]["concepts"] = ["red", "star"]
    (repo / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(["eraselab", "check"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 2 and "run `eraselab graph`" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_dvc_lock_stays_small_per_stage(dvc_micro_run):
    """One key per job instead of per-file code deps and params values: no stage but `check` (which holds
    params.yaml, for `dvc params diff`) records params, and a stage's deps and command stay under 1.5 kB."""
    stages = yaml.safe_load((dvc_micro_run / "dvc.lock").read_text())["stages"]
    assert [name for name, stage in stages.items() if "params" in stage] == ["check"]
    # deps and command only: outputs are one line each however many a stage writes (cells, figures)
    sizes = {name: len(yaml.safe_dump({k: v for k, v in stage.items() if k != "outs"}))
             for name, stage in stages.items() if name != "check"}
    assert max(sizes.values()) < 1500, sizes
