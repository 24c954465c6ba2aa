"""The SLURM profile, without a cluster: it parses, covers every rule, and a dry run resolves each job's request.

SLURM_CONF points nowhere, so any SLURM command the dry run might call would fail: nothing here needs one.
workflow/slurm/run_smoke.sh runs the same profile on a real single-node SLURM.
"""

import re
import shlex
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, scratch_repo

PROFILE = Path("workflow/profiles/slurm")
GPU_RULES = {"base_model", "generate", "targets", "search", "erase", "defended", "attack"}
NO_SLURM = {"SLURM_CONF": "/nonexistent/slurm.conf"}


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load((ROOT / PROFILE / "config.yaml").read_text())


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> Path:
    return scratch_repo(tmp_path_factory.mktemp("slurm") / "repo")


def snakemake(repo: Path, *args: str) -> str:
    import os

    result = subprocess.run(["snakemake", *args], cwd=repo, capture_output=True, text=True,
                            env={**os.environ, **NO_SLURM})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def parse_value(text: str):
    return int(text) if text.isdigit() else text


def dry_run_jobs(repo: Path, *extra: str) -> dict[str, list[dict]]:
    """Per rule, each job's threads and the resources Snakemake resolves with the SLURM profile."""
    # A dry run caps threads at --cores (1 by default); the SLURM executor does not cap them, so lift the cap.
    out = snakemake(repo, "--profile", str(PROFILE), "--dry-run", "--cores", "64", "reports/", *extra)
    jobs: dict[str, list[dict]] = defaultdict(list)
    for block in re.split(r"^(?:local)?rule ", out, flags=re.M)[1:]:
        name = block.split(":", 1)[0]
        threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        assert resources, block
        job = {key: parse_value(value) for key, value in (item.split("=", 1) for item in resources[1].split(", "))}
        job["threads"] = int(threads[1]) if threads else 1
        jobs[name].append(job)
    return jobs


def test_profile_sets_the_executor_and_defaults(profile):
    assert profile["executor"] == "slurm"
    assert {"mem_mb", "runtime", "slurm_partition", "cpus_per_task"} <= set(profile["default-resources"])
    assert profile["latency-wait"] > 0 and profile["retries"] >= 1 and profile["jobs"] >= 1


def test_profile_covers_exactly_the_workflows_rules(profile, smoke_repo):
    rules = set(snakemake(smoke_repo, "--list-rules").split()) - {"all"}
    assert set(profile["set-resources"]) == rules
    for rule in GPU_RULES:
        assert profile["set-resources"][rule]["gpu"] >= 1, rule


def test_dry_run_resolves_every_rules_request_from_the_profile(profile, smoke_repo):
    jobs = dry_run_jobs(smoke_repo)
    assert set(jobs) == set(profile["set-resources"])
    assert any(job["threads"] > 1 for runs in jobs.values() for job in runs)  # cpus follow threads, not a constant
    for rule, runs in jobs.items():
        wanted = profile["set-resources"][rule]
        for job in runs:
            assert job["mem_mb"] == wanted["mem_mb"] and job["runtime"] == wanted["runtime"], (rule, job)
            assert job["cpus_per_task"] == job["threads"], (rule, job)
            if rule in GPU_RULES:
                assert (job["gpu"], job["slurm_partition"]) == (1, "gpu"), (rule, job)
            else:
                assert job.get("gpu", 0) == 0 and job["slurm_partition"] == "cpu", (rule, job)


def toy_overrides() -> list[str]:
    """The --set-resources that run_smoke.sh passes for the CPU-only smoke grid."""
    script = (ROOT / "workflow" / "slurm" / "run_smoke.sh").read_text()
    line = re.search(r"^TOY_OVERRIDES=\((.*)\)$", script, flags=re.M)
    assert line, "run_smoke.sh no longer defines TOY_OVERRIDES=(...)"
    return shlex.split(line[1])


def test_toy_overrides_request_no_gpu_and_the_rules_own_sizes(smoke_repo):
    jobs = dry_run_jobs(smoke_repo, *toy_overrides())
    assert set(jobs) >= GPU_RULES
    sizes = {rule: {job["mem_mb"] for job in runs} for rule, runs in jobs.items()}
    for rule, runs in jobs.items():
        for job in runs:
            assert job.get("gpu", 0) == 0 and job["slurm_partition"] == "cpu", (rule, job)
            assert job["cpus_per_task"] == job["threads"], (rule, job)
    # The Snakefile's toy sizes, not the profile's SD v1.4 ones: nothing asks for more than a laptop has.
    assert max(max(s) for s in sizes.values()) <= 8000, sizes
