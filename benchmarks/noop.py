"""No-op rerun overhead: `dvc repro` and `snakemake` on a checkout where everything is up to date.

Usage (after `make run`, in the repo root): python benchmarks/noop.py [--repeats 3]
Targets (issue 3): no-op `dvc repro` <= 2 s, no-op `snakemake` <= 3 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path.cwd()  # the checkout to measure: run from its root
# command, target seconds, and how its output says it ran a job
COMMANDS = {
    "dvc repro": (["dvc", "repro"], 2.0, lambda out: "Running stage" in out),
    "snakemake --cores 2 reports/": (["snakemake", "--cores", "2", "reports/"], 3.0,
                                     lambda out: "Nothing to be done" not in out),
}


def timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, out.stdout + out.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| no-op command | median of %d (s) | target (s) | ran a job? |\n|---|---|---|---|" % args.repeats)
    for name, (cmd, target, ran_a_job) in COMMANDS.items():
        runs = [timed(cmd) for _ in range(args.repeats)]
        median = statistics.median(t for t, _ in runs)
        did_work = any(ran_a_job(out) for _, out in runs)
        print(f"| `{name}` | {median:.2f} | {target} ({'met' if median <= target else 'missed'}) | "
              f"{'yes' if did_work else 'no'} |")


if __name__ == "__main__":
    main()
