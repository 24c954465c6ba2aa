"""No-op rerun overhead: `dvc repro` and `snakemake` on a checkout where everything is up to date.

Usage (after `make run`, in the repo root): python benchmarks/noop.py [--repeats 3]
Limits (docs/benchmarks.md): no-op `dvc repro` <= 3 s (aim: 2 s), no-op `snakemake` <= 3 s on the 2-core
machine.

Each engine is timed only where it has nothing to run: a dry check first (`dvc status`, `snakemake
--dry-run`), so the benchmark never starts a pipeline. Snakemake compares its outputs' mtimes and code
fingerprints; after a complete `make run` its dry run finds nothing to do. Where it would still run jobs,
measure it in a copy of the checkout after `snakemake --touch --cores 1 reports/`.

Snakemake loads every installed executor plugin at startup, and the SLURM one (the `slurm` extra) runs
`scontrol show config`: where SLURM's client is installed but no controller answers, that call alone
waits ~9 s. The script times that call separately, so the table also shows Snakemake's own cost.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path.cwd()  # the checkout to measure: run from its root
SNAKEMAKE = ["snakemake", "--cores", "2", "reports/"]


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=check)


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = run(cmd)
    return time.perf_counter() - start, out.stdout + out.stderr


def snakemake_pending_jobs() -> int:
    """Jobs a dry run of the measured snakemake command would run."""
    out = run([*SNAKEMAKE, "--dry-run", "--quiet", "rules"]).stdout
    rows = [line.split() for line in out.splitlines()]
    return max((int(r[1]) for r in rows if len(r) == 2 and r[0] == "total" and r[1].isdigit()), default=0)


def dvc_is_current() -> bool:
    """`dvc status --quiet` exits 0 only when every stage is up to date."""
    return run(["dvc", "status", "--quiet"], check=False).returncode == 0


def dvc_pending() -> str | None:
    return None if dvc_is_current() else "`dvc status` lists changed stages: run `dvc repro` first"


def snakemake_pending() -> str | None:
    pending = snakemake_pending_jobs()
    return (f"snakemake would run {pending} jobs here (outputs DVC wrote look stale to it): measure in a copy "
            "after `snakemake --touch --cores 1 reports/`") if pending else None


# command, target seconds, how its output says it ran a job, and why it is no no-op here (None: it is one)
COMMANDS = {
    "dvc repro": (["dvc", "repro"], 3.0, lambda out: "Running stage" in out, dvc_pending),
    "snakemake --cores 2 reports/": (SNAKEMAKE, 3.0, lambda out: "Nothing to be done" not in out,
                                     snakemake_pending),
}


def slurm_probe_s() -> float | None:
    """Wall time of the `scontrol show config` call the SLURM plugin makes at startup (None: it makes none)."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None or shutil.which("scontrol") is None:
        return None
    start = time.perf_counter()
    try:  # the plugin's own timeout is 10 s
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| no-op command | median of %d (s) | target (s) | ran a job? |\n|---|---|---|---|" % args.repeats)
    probe = slurm_probe_s()
    for name, (cmd, target, ran_a_job, not_a_noop) in COMMANDS.items():
        if reason := not_a_noop():
            print(f"| `{name}` | not measured: {reason} | {target} | no |")
            continue
        runs = [timed(cmd) for _ in range(args.repeats)]
        median = statistics.median(t for t, _ in runs)
        did_work = any(ran_a_job(out) for _, out in runs)
        rows = [(f"`{name}`", median)]
        if probe is not None and cmd is SNAKEMAKE:
            rows.append((f"`{name}` less the SLURM plugin's `scontrol` probe ({probe:.2f} s)", median - probe))
        for label, seconds in rows:
            print(f"| {label} | {seconds:.2f} | {target} ({'met' if seconds <= target else 'missed'}) | "
                  f"{'yes' if did_work else 'no'} |")


if __name__ == "__main__":
    main()
