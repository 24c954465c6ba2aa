"""The pipeline's stages: one module per stage kind, each declaring its jobs and running one of them.

A stage module has
- ``KEYS``: what names one of its jobs, e.g. ("method", "concept"); () for a kind with a single job;
- ``jobs(params) -> list[Job]``: the jobs this params file's graph holds, each with what it reads and
  writes and the params keys and plugins it uses (an empty list: the kind is not in this profile's graph);
- ``run(params, **keys)``: one job's work, its outputs written atomically.

`eraselab.graph` turns the declarations into dvc.yaml and the Snakemake rules (so the two engines cannot
disagree), and derives each job's code dependencies from what its stage module and plugins import;
`eraselab.cli` only parses a job's keys and calls `execute`.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# In graph order: each kind reads only what kinds before it write.
KINDS = ("check", "world", "base_model", "judge", "clip", "prompts", "generate", "evaluate_base", "concept_prompts",
         "targets", "search", "erase", "defended", "attack", "evaluate", "seeds", "report")


@dataclass(frozen=True)
class Out:
    """One output: a folder or a file; ``metric`` / ``plot`` declare it to DVC as such; ``cache=False`` keeps it
    in git (small, and every commit carries it); ``persist`` keeps it in place while its stage runs.

    Only a metric or plot may be ``cache=False`` (or a persistent output, whose stage DVC never restores):
    DVC keeps no run-cache entry for a stage with any other uncached output, so going back to earlier
    params would rerun it instead of restoring it."""

    path: str
    directory: bool = True
    metric: bool = False
    plot: dict | None = None
    cache: bool = True
    persist: bool = False

    def __post_init__(self):
        if not (self.cache or self.metric or self.plot or self.persist):
            raise ValueError(f"{self.path}: an uncached output must be a metric or plot (DVC's run-cache skips "
                             "stages with other uncached outputs)")


@dataclass
class Job:
    kind: str
    keys: dict[str, str]
    deps: list[str]
    outs: list[Out]
    params: list[str]  # dotted params.yaml keys the job reads (only those present in the file are declared)
    plugins: list[tuple[str, str]] = field(default_factory=list)  # (methods|attacks|detectors, name)
    threads: int = 1  # torch threads; also the CPU slots the job holds while it runs
    mem_mb: int = 1000
    gpu: bool = False

    @property
    def name(self) -> str:
        """The stage name in dvc.yaml: kind, then the keys' values, dot-separated (erase.esd_x.red)."""
        return ".".join([self.kind, *self.keys.values()])

    @property
    def cmd(self) -> str:
        return " ".join(["eraselab", self.kind.replace("_", "-"), *(f"--{k} {v}" for k, v in self.keys.items())])


def stage_module(kind: str):
    if kind not in KINDS:
        raise KeyError(f"unknown stage {kind!r}; valid choices: {', '.join(KINDS)}")
    return importlib.import_module(f"eraselab.stages.{kind}")


def find_job(params, kind: str, keys: dict[str, str]) -> Job:
    """The job ``keys`` name in this params file's graph; otherwise one error listing the valid choices."""
    from eraselab.params import ParamsError

    jobs = stage_module(kind).jobs(params)
    for job in jobs:
        if job.keys == keys:
            return job
    if not jobs:
        raise ParamsError(f"stage {kind!r} is not in this profile's graph (params.yaml: model.source "
                          f"{params.model.source!r}, grid.concepts {params.grid.concepts})")
    for key in keys:
        valid = sorted({job.keys[key] for job in jobs})
        if keys[key] not in valid:
            raise ParamsError(f"--{key} {keys[key]!r}: not in this graph (params.yaml grid); valid choices: "
                              f"{', '.join(valid)}")
    raise ParamsError(f"{kind} {keys}: no such job; valid: {', '.join(j.name for j in jobs)}")


def validated(params_file: str | Path):
    """params.yaml, validated, with every external weight and data file it names present (else one error
    listing what to download): the first thing every stage does."""
    from eraselab.params import load_params
    from eraselab.preflight import check_externals

    params = load_params(params_file)
    check_externals(params, str(params_file))
    return params


def check_plugins(params, job: Job, source: str) -> None:
    """The job's methods' and attacks' own params blocks (`check` validates all of them under DVC; a job run
    by hand or by Snakemake checks its own, before it computes anything)."""
    from eraselab.params import _component_params

    for table, name in job.plugins:
        section = {"methods": "erase", "attacks": "attack"}.get(table)
        if section:
            _component_params(section, name, getattr(params, section).get(name, {}), source)


def execute(kind: str, keys: dict[str, str], params_file: str | Path = "params.yaml") -> Job:
    """Validate, hold the job's CPU slots, run it, record its wall time and peak memory (logs/stages)."""
    from eraselab.io import record_stage, sweep

    start = time.perf_counter()
    for line in sweep():  # what killed runs left behind, before anything else
        print(f"eraselab: {line} (left by a killed run)")
    params = validated(params_file)
    job = find_job(params, kind, keys)
    check_plugins(params, job, str(params_file))
    with cpu_slots(job.threads):
        stage_module(kind).run(params, **keys)
    record_stage(kind, job.name, time.perf_counter() - start)
    return job


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def cpu_slots(threads: int, folder: str | Path | None = None):
    """Hold ``threads`` of this machine's cores while the job runs, whatever the engine was told.

    `snakemake --cores 8` on a 2-core machine would start four 2-thread torch jobs at once (measured: 4.5x
    slower than one at a time). Each core is a lock file; a job takes min(threads, cores) of them or
    waits. The locks only order jobs: no artifact depends on them. ``ERASELAB_SLOTS_DIR`` moves the lock
    files (one folder per machine: a cluster node has its own)."""
    n = max(1, min(threads, cores()))
    folder = Path(folder or os.environ.get("ERASELAB_SLOTS_DIR") or Path(tempfile.gettempdir()) / f"eraselab-cpu-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    held: list = []
    try:
        while True:
            for slot in range(cores()):
                f = open(folder / f"core-{slot}.lock", "w")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.close()
                    continue
                held.append(f)
                if len(held) == n:
                    break
            if len(held) == n:
                break
            for f in held:  # all or nothing: two waiting jobs never hold a core each forever
                f.close()
            held = []
            time.sleep(0.2 + random.random() * 0.3)
        yield n
    finally:
        for f in held:
            f.close()
