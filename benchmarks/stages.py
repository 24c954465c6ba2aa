"""Per-stage breakdown of a pipeline run: wall time and peak memory per stage kind, from logs/stages/.

Every CLI stage writes logs/stages/<its output>.json = {stage, wall_s, peak_rss_mb} (eraselab.io.record_stage).
Kinds: the stage's command, with erase split per method and attack per attack (their output paths name
them). Per kind: count, total and max wall seconds, max peak RSS against the 4 GB target. Prints a
Markdown table and saves a bar chart. The logic is eraselab.report.cost, which also renders the report's
"Cost of the runs on this machine" section.

Usage (repo root, after `dvc repro` or `snakemake`): python benchmarks/stages.py [--png logs/stages.png]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from eraselab.report.cost import COLD_RUN_TARGET_S, ORDER, PEAK_RSS_TARGET_MB, chart_png, collect  # noqa: F401
from eraselab.report.cost import markdown_table, stage_kind, totals  # noqa: F401


def plot(kinds: dict[str, dict], out: Path) -> None:
    """The bar chart, written atomically to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=".png", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(chart_png(kinds))
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages-dir", default="logs/stages")
    parser.add_argument("--png", default="logs/stages.png", help="bar chart to write ('' for none)")
    args = parser.parse_args()
    folder = Path(args.stages_dir)
    if not folder.is_dir() or not any(folder.rglob("*.json")):
        raise SystemExit(f"no stage records under {folder}/: run `dvc repro` (or `snakemake`) first; every "
                         f"`eraselab` stage writes its wall time and peak RSS there")
    try:
        kinds = collect(folder)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    print(markdown_table(kinds))
    print(f"\nSum of stage wall times (what a serial `dvc repro` of these stages spends inside them): "
          f"{totals(kinds)['total_s'] / 60:.1f} min; the cold default-grid target is {COLD_RUN_TARGET_S // 60} min "
          f"(engine overhead comes on top; stages rerun since the last full run overwrite their records).")
    if args.png:
        plot(kinds, Path(args.png))
        print(f"chart: {args.png}")


if __name__ == "__main__":
    main()
