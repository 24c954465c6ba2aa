"""Time per erasure method and per attack, from the timings the grid's stages logged.

Run from the repo root after `dvc repro` (or `snakemake`): stages write wall-clock times to
logs/timing/<output>.json, never into their artifacts (which stay bit-identical across runs). Prints one
Markdown table per kind, mean seconds over the concepts (and methods, for attacks) that have a timing.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

TIMING = Path("logs/timing")


def collect(pattern: str, key: str, group: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for path in sorted(TIMING.glob(pattern)):
        parts = path.relative_to(TIMING).with_suffix("").parts
        out[parts[group]].append(json.loads(path.read_text())[key])
    return out


def main() -> None:
    erase = collect("models/erased/*/*.json", "erase_s", 2)
    attack = collect("data/attacks/*/*/*.json", "attack_s", 4)
    for name, times in collect("data/searches/*/*.json", "search_s", 3).items():  # defence-blind: once per concept
        attack[name] += times
    cells = defaultdict(list)
    for path in Path("metrics/cells").glob("*/*/*.json"):
        cells[path.stem].append(json.loads(path.read_text()).get("attack_queries", 0.0))
    print("| method | erase time, mean s (n) |\n|---|---|")
    for name, times in erase.items():
        print(f"| {name} | {statistics.mean(times):.1f} ({len(times)}) |")
    print("\n| attack | time per cell, mean s (n) | defended generations per seed prompt |\n|---|---|---|")
    for name, times in attack.items():
        queries = f"{statistics.mean(cells[name]):.2f}" if cells.get(name) else "-"
        print(f"| {name} | {statistics.mean(times):.1f} ({len(times)}) | {queries} |")


if __name__ == "__main__":
    main()
