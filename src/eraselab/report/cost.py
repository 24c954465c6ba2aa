"""Per-stage cost of the runs in this checkout: wall time and peak memory per stage kind, from logs/stages/.

Every stage writes logs/stages/<its job name>.json = {stage, wall_s, peak_rss_mb} (eraselab.stages.execute),
e.g. logs/stages/attack.esd_x.red.p4d_n.json. Kinds: the stage kind, with erase split per method and attack
and search per attack (the job name holds them), in the graph's order. Per kind: count, total and max wall seconds, max peak RSS against the 4 GB
target. One implementation for the report's cost section and for benchmarks/stages.py.

These records are untracked measurements, never inputs of a cached result: nothing here may enter
reports/metrics.json, which must stay bit-identical across runs and engines.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path

from eraselab.stages import KINDS

PEAK_RSS_TARGET_MB = 4096  # issue "Benchmarks and speed": <= 4 GB per stage in the toy world
COLD_RUN_TARGET_S = 45 * 60  # the whole default toy grid cold, base model included
# the graph's order, so the table reads like the DAG; kinds not listed follow alphabetically
ORDER = list(KINDS)
FIELDS = ("stage", "wall_s", "peak_rss_mb")
HEADER = ["stage kind", "stages", "total wall (s)", "slowest (s)", "max peak RSS (MB)", "<= 4 GB"]


def stage_kind(record: dict, relative: Path) -> str:
    """erase.<method>.<concept> -> 'erase <method>', attack.<method>.<concept>.<attack> -> 'attack <attack>',
    search.<attack>.<concept> -> 'search <attack>'; every other stage is its kind."""
    kind, parts = record["stage"], relative.as_posix().removesuffix(".json").split(".")
    if kind == "erase" and len(parts) == 3:
        return f"erase {parts[1]}"
    if kind == "attack" and len(parts) == 4:
        return f"attack {parts[3]}"
    if kind == "search" and len(parts) == 3:
        return f"search {parts[1]}"
    return kind


def read_records(folder: Path) -> tuple[list[tuple[Path, dict]], list[str]]:
    """(path relative to ``folder``, record) for every stage record under ``folder``, and one problem line
    per .json file there that is not one. A missing folder has none of either."""
    folder = Path(folder)
    records, problems = [], []
    for path in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            problems.append(f"{path}: not a stage record ({err})")
            continue
        missing = set(FIELDS) - set(record) if isinstance(record, dict) else set(FIELDS)
        if missing:
            problems.append(f"{path}: not a stage record (missing {', '.join(sorted(missing))})")
            continue
        if not all(isinstance(record[k], (int, float)) and not isinstance(record[k], bool) for k in FIELDS[1:]):
            problems.append(f"{path}: not a stage record (wall_s and peak_rss_mb must be numbers)")
            continue
        records.append((path.relative_to(folder), record))
    return records, problems


def group(records: list[tuple[Path, dict]]) -> dict[str, dict]:
    """kind -> {count, total_s, max_s, max_rss_mb}, kinds in the pipeline's order."""
    kinds: dict[str, dict] = defaultdict(lambda: {"count": 0, "total_s": 0.0, "max_s": 0.0, "max_rss_mb": 0.0})
    for relative, record in records:
        k = kinds[stage_kind(record, relative)]
        k["count"] += 1
        k["total_s"] += record["wall_s"]
        k["max_s"] = max(k["max_s"], record["wall_s"])
        k["max_rss_mb"] = max(k["max_rss_mb"], record["peak_rss_mb"])
    return dict(sorted(kinds.items(), key=lambda kv: (_rank(kv[0]), kv[0])))


def collect(folder: Path) -> dict[str, dict]:
    """``group`` of every record under ``folder``; a file there that is no stage record is an error."""
    records, problems = read_records(folder)
    if problems:
        raise ValueError(problems[0])
    return group(records)


def _rank(kind: str) -> int:
    head = kind.split(" ")[0]
    return ORDER.index(head) if head in ORDER else len(ORDER)


def totals(kinds: dict[str, dict]) -> dict:
    """All kinds together: stages, summed wall seconds, max peak RSS."""
    return {"count": sum(k["count"] for k in kinds.values()), "total_s": sum(k["total_s"] for k in kinds.values()),
            "max_rss_mb": max((k["max_rss_mb"] for k in kinds.values()), default=0.0)}


def rows(kinds: dict[str, dict]) -> list[list[str]]:
    """The table's rows as text (HEADER's columns), one per kind, then the all-kinds row."""
    out = [[name, str(k["count"]), f"{k['total_s']:.1f}", f"{k['max_s']:.1f}", f"{k['max_rss_mb']:.0f}",
            "yes" if k["max_rss_mb"] <= PEAK_RSS_TARGET_MB else "no"] for name, k in kinds.items()]
    t = totals(kinds)
    out.append(["all", str(t["count"]), f"{t['total_s']:.1f}", "", f"{t['max_rss_mb']:.0f}", ""])
    return out


def markdown_table(kinds: dict[str, dict]) -> str:
    """The table in Markdown; a stage kind over the memory target and the all-kinds row in bold."""
    *per_kind, (_, count, total, _, rss, _) = rows(kinds)  # the last row is all kinds together
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row[:5] + [row[5] if row[5] == "yes" else f"**{row[5]}**"]) + " |"
              for row in per_kind]
    lines.append(f"| **all** | {count} | {total} | | {rss} | |")
    return "\n".join(lines)


def html_table(kinds: dict[str, dict]) -> str:
    from eraselab.report.build import _table  # build imports this module

    return _table(HEADER, rows(kinds))[1]


def chart_png(kinds: dict[str, dict], title: str = "Per-stage breakdown (logs/stages)") -> bytes:
    """Bar chart, PNG bytes: per kind total and slowest wall time (log scale), and max peak RSS against
    the 4 GB target. Drawn as the report's other figures (eraselab.report.build)."""
    from eraselab.report.figures import figure_png, plt

    names = list(kinds)[::-1]  # top to bottom in pipeline order
    fig, (time_ax, rss_ax) = plt.subplots(1, 2, figsize=(11, 0.32 * len(names) + 1.5), sharey=True)
    time_ax.barh(names, [kinds[n]["total_s"] for n in names], color="tab:blue", label="total")
    time_ax.barh(names, [kinds[n]["max_s"] for n in names], color="tab:orange", label="slowest stage")
    time_ax.set_xscale("log")  # base-model training is minutes, a prompts stage seconds
    time_ax.set_xlabel("wall time (s, log scale)")
    time_ax.grid(axis="x", alpha=0.3)
    time_ax.legend(loc="best")
    rss_ax.barh(names, [kinds[n]["max_rss_mb"] for n in names], color="tab:green")
    rss_ax.axvline(PEAK_RSS_TARGET_MB, color="tab:red", linestyle="--", label="4 GB target")
    rss_ax.set_xlabel("max peak RSS (MB)")
    rss_ax.grid(axis="x", alpha=0.3)
    rss_ax.legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return figure_png(fig)


SECTION_TITLE = "Cost of the runs on this machine"
CHART = "cost.png"


def section(folder: Path) -> dict:
    """The report's cost section from the records under ``folder``: {"md", "html", "png"} ("png": chart
    bytes, or None when there are no records). Never raises for a missing, empty or odd folder: the report
    must build without it."""
    folder = Path(folder)
    shown = folder.as_posix().rstrip("/") + "/"
    records, problems = read_records(folder)
    if not records:
        note = (f"No stage records under `{shown}`: no stage has run in this checkout yet (the records are "
                f"untracked, so a fresh clone or a `dvc pull` has none).")
        return {"md": note, "html": f"<p>{_code(note)}</p>", "png": None}
    kinds = group(records)
    t = totals(kinds)
    intro = (f"Wall time and peak memory (max RSS) of each stage, as recorded in `{shown}` by whatever runs this "
             f"checkout has done (`eraselab.io.record_stage`). These are untracked measurements, not inputs of any "
             f"cached result: wall times vary with the machine's load, and a stage restored from the DVC cache "
             f"(or skipped as up to date) leaves no fresh record, so its row is from the last run that executed "
             f"it here, if any; a report itself restored from the cache or a remote shows the records of the checkout "
             f"that built it, and its own stage is recorded only after the page is written. Memory target: "
             f"≤ 4 GB ({PEAK_RSS_TARGET_MB} MB) peak RSS per stage.")
    total = (f"Total wall time of the {t['count']} recorded stages: {t['total_s']:.1f} s "
             f"({t['total_s'] / 60:.1f} min; the cold default-grid target is {COLD_RUN_TARGET_S // 60} min, "
             f"engine overhead on top).")
    skipped = (f"{len(problems)} file(s) under `{shown}` are no stage records and were skipped."
               if problems else "")
    md = "\n\n".join(p for p in (intro, markdown_table(kinds), total, skipped, f"![per-stage cost]({CHART})") if p)
    page = f"<p>{_code(intro)}</p>" + html_table(kinds) + f"<p>{_code(total)}</p>"
    page += f"<p>{_code(skipped)}</p>" if skipped else ""
    return {"md": md, "html": page, "png": chart_png(kinds, f"Per-stage cost ({shown})")}


def _code(text: str) -> str:
    """Escape ``text`` for HTML, with its `backquoted` parts as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
