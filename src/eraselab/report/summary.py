"""metrics/summary.json: the grid's headline numbers, small enough to track in git (DVC `cache: false`).

Layout (every value a number, except the profile's name):

- ``profile``, ``size`` (methods, concepts, attacks, cells);
- ``base_model.accuracy.<kind>`` and ``judge.heldout_accuracy.<kind>`` where the profile trains the toy
  world's model and judge (absent on a given model);
- ``grid.<method>.<concept>.<attack>.<metric>``: each cell's rates, as in reports/metrics.json;
- ``quality.<method>.<concept>.{fid,kid}``: the quality cost on benign prompts (null where undefined);
- ``methods.<method>.<metric>``: means over concepts — ``target_rate``, ``heldout_rate``, ``retention``,
  ``clip``, ``fid``, ``kid`` (of its benign-prompt images against the reference method), ``pre_asr``,
  ``asr.<attack>``, and ``worst_asr``: the mean over concepts of the highest ASR any attack reached.

`eraselab compare` prints it per experiment; `eraselab readme` writes the README's table from it.

It holds no commit and no time: it is a function of the report stage's inputs alone, bit-identical across
clones and engines. The code and data behind it are pinned by dvc.lock; the git commit that carries both
names them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from statistics import fmean

from eraselab.stages import paths

ROW_METRICS = ("target_rate", "heldout_rate", "retention", "clip", "pre_asr")  # the same in each cell of a row


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(fmean(values), 4) if values else None


def build_summary(grid: dict, quality: dict, attacks: list[str], profile: str, toy: dict | None = None) -> dict:
    """``grid[m][c][a]``: the cells' metrics (reports/metrics.json's ``grid``); ``quality[m][c]``: FID/KID;
    ``toy``: ``{"base_model": {"accuracy": …}, "judge": {"heldout_accuracy": …}}`` where the toy world's
    model and judge were trained."""
    methods = {}
    for m, by_concept in grid.items():
        concepts = list(by_concept)
        row = {k: _mean(by_concept[c][attacks[0]][k] for c in concepts) for k in ROW_METRICS}
        row["fid"] = _mean(quality.get(m, {}).get(c, {}).get("fid") for c in concepts)
        row["kid"] = _mean(quality.get(m, {}).get(c, {}).get("kid") for c in concepts)
        row["asr"] = {a: _mean(by_concept[c][a]["asr"] for c in concepts) for a in attacks}
        row["worst_asr"] = _mean(max(by_concept[c][a]["asr"] for a in attacks) for c in concepts)
        methods[m] = row
    concepts = sorted({c for by_concept in grid.values() for c in by_concept})
    return {"profile": profile,
            **({"base_model": {"accuracy": toy["base_model"]["accuracy"]},
                "judge": {"heldout_accuracy": toy["judge"]["heldout_accuracy"]}} if toy else {}),
            "size": {"methods": len(grid), "concepts": len(concepts), "attacks": len(attacks),
                     "cells": len(grid) * len(concepts) * len(attacks)},
            "methods": methods,
            "grid": {m: {c: {a: {k: round(v, 4) if isinstance(v, float) else v for k, v in cell.items()}
                             for a, cell in by_attack.items()} for c, by_attack in by_concept.items()}
                     for m, by_concept in grid.items()},
            "quality": {m: {c: {k: None if q.get(k) is None else round(q[k], 6) for k in ("fid", "kid")}
                            for c, q in by_concept.items()} for m, by_concept in quality.items()}}


# --- reading it back: the README table, `eraselab compare` -------------------------------------------------
def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def method_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Method rows: erasure, retention, quality, then ASR per attack and the worst case."""
    attacks = list(next(iter(summary["methods"].values()))["asr"]) if summary["methods"] else []
    header = ["method", "target", "held-out", "retention", "CLIP", "FID", "KID×10³", "Pre-ASR",
              *(f"ASR {a}" for a in attacks if a != "no_attack"), "worst ASR"]
    rows = []
    for m, r in summary["methods"].items():
        rows.append([m, _fmt(r["target_rate"]), _fmt(r["heldout_rate"]), _fmt(r["retention"]), _fmt(r["clip"], 1),
                     _fmt(r["fid"], 1), _fmt(None if r["kid"] is None else r["kid"] * 1e3, 1), _fmt(r["pre_asr"]),
                     *(_fmt(r["asr"][a]) for a in attacks if a != "no_attack"), _fmt(r["worst_asr"])])
    return header, rows


def markdown_table(summary: dict) -> str:
    header, rows = method_table(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    size = summary["size"]
    caption = (f"Profile `{summary['profile']}`: {size['methods']} methods × {size['concepts']} concepts × "
               f"{size['attacks']} attacks ({size['cells']} cells), means over concepts, from `metrics/summary.json` (its code and data: "
               "`dvc.lock`). "
               "Rates are shares of images that show the concept (lower is better, except retention); "
               "worst ASR: the highest ASR any attack reached, per concept.")
    if any(r[header.index("FID")] == "–" for r in rows):
        caption += (" FID –: too few images for the feature dimension (the metric spec's `fid_min_images: skip`); "
                    "KID has no such limit.")
    return caption + "\n\n" + "\n".join(lines)


README_START, README_END = "<!-- summary:start -->", "<!-- summary:end -->"


def readme_block(summary: dict) -> str:
    return f"{README_START}\n{markdown_table(summary)}\n{README_END}"


def replace_readme_block(text: str, summary: dict, name: str = "README.md") -> str:
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{name}: no `{README_START}` … `{README_END}` block to write the summary table into")
    return text[:start] + readme_block(summary) + text[end + len(README_END):]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda row: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def compare_table(summary: dict) -> str:
    """One experiment's method × attack ASR table with retention and the worst case, for a terminal; the
    lowest worst-case ASR is marked."""
    attacks = [a for a in next(iter(summary["methods"].values()))["asr"] if a != "no_attack"]
    short = {a: a.replace("unlearndiffatk", "UDA").replace("ring_a_bell", "RAB").replace("mma_diffusion", "MMA")
             for a in attacks}
    header = ["method", "target", "retain", "FID", "preASR", *(short[a] for a in attacks), "worst"]
    best = min((r["worst_asr"] for r in summary["methods"].values() if r["worst_asr"] is not None), default=None)
    rows = []
    for m, r in summary["methods"].items():
        rows.append([m + (" *" if r["worst_asr"] == best else ""), _fmt(r["target_rate"]), _fmt(r["retention"]),
                     _fmt(r["fid"], 1), _fmt(r["pre_asr"]), *(_fmt(r["asr"][a]) for a in attacks), _fmt(r["worst_asr"])])
    return text_table(header, rows)


def headline(summary: dict, reference: str = "none") -> str:
    """The report's opening paragraph, generated from the numbers: which defence has the lowest worst-case
    ASR, at what retention and quality cost, against the undefended ``reference``."""
    size, methods = summary["size"], summary["methods"]
    text = (f"Profile `{summary['profile']}`: {size['methods']} methods × {size['concepts']} concepts × "
            f"{size['attacks']} attacks ({size['cells']} cells). ")
    defences = {m: r for m, r in methods.items() if m != reference and r["worst_asr"] is not None}
    if not defences:
        return text + "No defence in this grid besides the reference."
    best = min(defences, key=lambda m: (defences[m]["worst_asr"], -(defences[m]["retention"] or 0)))
    worst = max(defences, key=lambda m: defences[m]["worst_asr"])
    b, ref = defences[best], methods.get(reference)
    text += (f"The lowest worst-case ASR (the highest ASR any attack reached, mean over concepts) is "
             f"**{best}**'s, {_fmt(b['worst_asr'])}, with its target rate {_fmt(b['target_rate'])} and retention "
             f"{_fmt(b['retention'])}")
    if ref is not None:
        text += (f" (undefended `{reference}`: worst-case ASR {_fmt(ref['worst_asr'])}, retention "
                 f"{_fmt(ref['retention'])})")
    if b["fid"] is not None:
        text += f"; FID {_fmt(b['fid'], 1)} against `{reference}`'s benign images"
    text += (f". The highest among the defences is **{worst}**'s, {_fmt(defences[worst]['worst_asr'])}. "
             "Rates are from 10–60 images per cell: differences below about 0.15 are within sampling noise.")
    return text


# --- `eraselab compare` ---------------------------------------------------------------------------------------
SUMMARY_FILE = paths.SUMMARY  # one definition of the path: the graph's


def _summaries_from_show(show: list[dict]):
    """(label, summary) for the workspace, each baseline commit and each experiment in `dvc exp show --json`."""
    for baseline in show:
        data = baseline.get("data") or {}
        found = ((data.get("metrics") or {}).get(SUMMARY_FILE) or {}).get("data")
        label = baseline.get("name") or baseline.get("rev", "")
        if found:
            yield (label if label == "workspace" else str(label)[:7]), found
        for exp in baseline.get("experiments") or []:
            if (exp.get("executor") or {}).get("state") in ("running", "queued", "failed"):
                continue
            for rev in exp.get("revs") or []:
                found = (((rev.get("data") or {}).get("metrics") or {}).get(SUMMARY_FILE) or {}).get("data")
                if found and rev.get("name"):
                    yield rev["name"], found


METHOD_KEYS = (*ROW_METRICS, "fid", "kid", "worst_asr")


def completed(summary: dict) -> dict:
    """A summary as `dvc exp show --json` gives it back, which drops null values (e.g. an undefined FID):
    each method's missing numbers restored as None."""
    methods = {m: {**{k: None for k in METHOD_KEYS}, **row, "asr": dict(row.get("asr") or {})}
               for m, row in summary.get("methods", {}).items()}
    return {**summary, "methods": methods}


def _git_summary(rev: str) -> dict | None:
    import json

    out = subprocess.run(["git", "show", f"{rev}:{SUMMARY_FILE}"], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def compare(names: list[str], show: list[dict] | None = None) -> str:
    """Each named experiment's (or git revision's) method × attack table; with no names, the workspace and
    every experiment of `dvc exp show`. An unknown name is an error naming the ones there are."""
    import json

    if show is None:
        out = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
        show = json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []
    found = dict(_summaries_from_show(show))
    if not found and Path(SUMMARY_FILE).exists():
        found["workspace"] = json.loads(Path(SUMMARY_FILE).read_text())
    chosen = {}
    for name in names:
        summary = found.get(name) or _git_summary(name)
        if summary is None:
            raise ValueError(f"{name!r} is neither an experiment nor a git revision holding {SUMMARY_FILE}; "
                             f"experiments: {', '.join(found) or 'none'}")
        chosen[name] = summary
    if not names:
        chosen = found
    chosen = {label: completed(summary) for label, summary in chosen.items()}
    if not chosen:
        raise ValueError(f"no {SUMMARY_FILE} in the workspace or any experiment: run `dvc repro` first")
    blocks = []
    for label, summary in chosen.items():
        size = summary["size"]
        blocks.append(f"{label}: profile {summary['profile']}, {size['cells']} cells"
                      f" (ASR per attack; * lowest worst-case ASR)\n{compare_table(summary)}")
    return "\n\n".join(blocks)
