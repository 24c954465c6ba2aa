"""Per-stage breakdown of a pipeline run: wall time and peak memory per stage kind, from logs/stages/.

Every CLI stage writes logs/stages/<its output>.json = {stage, wall_s, peak_rss_mb} (eraselab.io.record_stage).
Kinds: the stage's command, with erase split per method and attack per attack (their output paths name
them). Per kind: count, total and max wall seconds, max peak RSS against the 4 GB target. Prints a
Markdown table and saves a bar chart.

Usage (repo root, after `dvc repro` or `snakemake`): python benchmarks/stages.py [--png logs/stages.png]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

PEAK_RSS_TARGET_MB = 4096  # issue "Benchmarks and speed": <= 4 GB per stage in the toy world
COLD_RUN_TARGET_S = 45 * 60  # the whole default toy grid cold, base model included
# the pipeline's order, so the table reads like the DAG; kinds not listed follow alphabetically
ORDER = ["world", "base-model", "judge", "clip", "prompts", "concept-prompts", "generate", "evaluate", "erase",
         "defended-images", "attack", "evaluate-cell", "quality", "report"]


def stage_kind(record: dict, relative: Path) -> str:
    """erase -> 'erase <method>' (models/erased/<method>/<concept>), attack -> 'attack <attack>'
    (data/attacks/<method>/<concept>/<attack>); every other stage is its command."""
    command, parts = record["stage"], relative.with_suffix("").parts
    if command == "erase" and len(parts) >= 2:
        return f"erase {parts[-2]}"
    if command == "attack" and parts:
        return f"attack {parts[-1]}"
    return command


def collect(folder: Path) -> dict[str, dict]:
    kinds: dict[str, dict] = defaultdict(lambda: {"count": 0, "total_s": 0.0, "max_s": 0.0, "max_rss_mb": 0.0})
    for path in sorted(folder.rglob("*.json")):
        record = json.loads(path.read_text())
        missing = {"stage", "wall_s", "peak_rss_mb"} - set(record)
        if missing:
            raise SystemExit(f"{path}: not a stage record (missing {', '.join(sorted(missing))})")
        k = kinds[stage_kind(record, path.relative_to(folder))]
        k["count"] += 1
        k["total_s"] += record["wall_s"]
        k["max_s"] = max(k["max_s"], record["wall_s"])
        k["max_rss_mb"] = max(k["max_rss_mb"], record["peak_rss_mb"])
    return dict(sorted(kinds.items(), key=lambda kv: (_rank(kv[0]), kv[0])))


def _rank(kind: str) -> int:
    head = kind.split(" ")[0]
    return ORDER.index(head) if head in ORDER else len(ORDER)


def plot(kinds: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(kinds)[::-1]  # top to bottom in pipeline order
    fig, (time_ax, rss_ax) = plt.subplots(1, 2, figsize=(11, 0.32 * len(names) + 1.5), sharey=True)
    time_ax.barh(names, [kinds[n]["total_s"] for n in names], color="tab:blue", label="total")
    time_ax.barh(names, [kinds[n]["max_s"] for n in names], color="tab:orange", label="slowest stage")
    time_ax.set_xscale("log")  # base-model training is minutes, a prompts stage seconds
    time_ax.set_xlabel("wall time (s, log scale)")
    time_ax.legend(loc="best")
    rss_ax.barh(names, [kinds[n]["max_rss_mb"] for n in names], color="tab:green")
    rss_ax.axvline(PEAK_RSS_TARGET_MB, color="tab:red", linestyle="--", label="4 GB target")
    rss_ax.set_xlabel("max peak RSS (MB)")
    rss_ax.legend(loc="best")
    fig.suptitle("Per-stage breakdown (logs/stages)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages-dir", default="logs/stages")
    parser.add_argument("--png", default="logs/stages.png", help="bar chart to write ('' for none)")
    args = parser.parse_args()
    folder = Path(args.stages_dir)
    if not folder.is_dir() or not any(folder.rglob("*.json")):
        raise SystemExit(f"no stage records under {folder}/: run `dvc repro` (or `snakemake`) first; every "
                         f"`eraselab` stage writes its wall time and peak RSS there")
    kinds = collect(folder)
    print("| stage kind | stages | total wall (s) | slowest (s) | max peak RSS (MB) | <= 4 GB |\n|---|---|---|---|---|---|")
    for name, k in kinds.items():
        ok = "yes" if k["max_rss_mb"] <= PEAK_RSS_TARGET_MB else "**no**"
        print(f"| {name} | {k['count']} | {k['total_s']:.1f} | {k['max_s']:.1f} | {k['max_rss_mb']:.0f} | {ok} |")
    total = sum(k["total_s"] for k in kinds.values())
    count = sum(k["count"] for k in kinds.values())
    print(f"| **all** | {count} | {total:.1f} | | {max(k['max_rss_mb'] for k in kinds.values()):.0f} | |")
    print(f"\nSum of stage wall times (what a serial `dvc repro` of these stages spends inside them): {total / 60:.1f} min;"
          f" the cold default-grid target is {COLD_RUN_TARGET_S // 60} min (engine overhead comes on top; stages"
          f" rerun since the last full run overwrite their records).")
    if args.png:
        plot(kinds, Path(args.png))
        print(f"chart: {args.png}")


if __name__ == "__main__":
    main()
