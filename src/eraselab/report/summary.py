"""metrics/summary.json: the grid's headline numbers, small enough to track in git (DVC `cache: false`).

Layout (every value a number, except the profile's name):

- ``profile``, ``size`` (methods, concepts, attacks, cells);
- ``base_model.accuracy.<kind>`` and ``judge.heldout_accuracy.<kind>`` where the profile trains the toy
  world's model and judge (absent on a given model);
- ``grid.<method>.<concept>.<attack>.<metric>``: each cell's rates, as in reports/metrics.json, with ``n``
  (the images behind each rate) and ``ci.<rate>``: its 95 % interval ``[low, high]``;
- ``quality.<method>.<concept>.{fid,kid}``: the quality cost on benign prompts (null where undefined);
- ``seeds.<method>.<metric>.{mean,sd}`` (with ``n_seeds``), where grid.train_seeds retrained the method:
  each attack-free rate's mean over concepts, then its mean and sd over the training seeds;
- ``methods.<method>.<metric>``: means over concepts — ``target_rate``, ``heldout_rate``, ``retention``,
  ``clip``, ``fid``, ``kid`` (of its benign-prompt images against the reference method), ``pre_asr``,
  ``asr.<attack>``, and ``worst_asr``: the mean over concepts of the highest ASR any attack reached; and
  ``ci.<metric>`` (``ci.asr.<attack>``): each rate's 95 % interval ``[low, high]``
  (`eraselab.evaluation.intervals`). Intervals are lists, which `dvc metrics show` and `dvc exp show` leave
  out: their columns stay the point estimates.

`eraselab compare` prints it per experiment; `eraselab readme` writes the README's table from it.

It holds no commit and no time: it is a function of the report stage's inputs alone, bit-identical across
clones and engines. The code and data behind it are pinned by dvc.lock; the git commit that carries both
names them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from statistics import fmean

from eraselab.evaluation.intervals import fmt_interval, mean_interval, rate_interval, separated
from eraselab.stages import paths

ROW_METRICS = ("target_rate", "heldout_rate", "retention", "clip", "pre_asr", "variants_rate")  # the same in a row's cells
# each rate and the count (a key of the cell's ``n``) of the images it is a share of
RATE_N = {"target_rate": "target_train", "heldout_rate": "target_heldout", "retention": "retain",
          "pre_asr": "attack_seeds", "asr": "attack_seeds", "variants_rate": "variants"}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(fmean(values), 4) if values else None


def _n(cell: dict, rate: str):
    return (cell.get("n") or {}).get(RATE_N[rate])


def cell_intervals(cell: dict) -> dict:
    """``ci.<rate>`` of one cell from its rates and ``n``."""
    return {k: rate_interval(cell.get(k), _n(cell, k)) for k in RATE_N if k in cell}


def _worst(by_attack: dict, attacks: list[str]) -> dict:
    return by_attack[max(attacks, key=lambda a: by_attack[a]["asr"])]  # the first attack reaching the maximum


def build_summary(grid: dict, quality: dict, attacks: list[str], profile: str, toy: dict | None = None,
                  seeds: dict | None = None) -> dict:
    """``grid[m][c][a]``: the cells' metrics (reports/metrics.json's ``grid``, each with its ``n``);
    ``quality[m][c]``: FID/KID; ``toy``: ``{"base_model": {"accuracy": …}, "judge": {"heldout_accuracy": …}}``
    where the toy world's model and judge were trained; ``seeds[m][s][c]``: extra training seeds' attack-free
    metrics (`seed_spread`), summarised under ``seeds.<method>``."""
    methods = {}
    for m, by_concept in grid.items():
        concepts = list(by_concept)
        first = [by_concept[c][attacks[0]] for c in concepts]
        row = {k: _mean(cell.get(k) for cell in first) for k in ROW_METRICS}
        families = [f for cell in first for f in (cell.get("variants_by_family") or {})]
        row["variants_by_family"] = {f: _mean((cell.get("variants_by_family") or {}).get(f, {}).get("rate")
                                              for cell in first) for f in dict.fromkeys(families)}
        row["fid"] = _mean(quality.get(m, {}).get(c, {}).get("fid") for c in concepts)
        row["kid"] = _mean(quality.get(m, {}).get(c, {}).get("kid") for c in concepts)
        row["asr"] = {a: _mean(by_concept[c][a]["asr"] for c in concepts) for a in attacks}
        worst = [_worst(by_concept[c], attacks) for c in concepts]
        row["worst_asr"] = _mean(cell["asr"] for cell in worst)
        row["ci"] = {**{k: mean_interval([cell.get(k) for cell in first], [_n(cell, k) for cell in first])
                        for k in RATE_N if k != "asr"},
                     "asr": {a: mean_interval([by_concept[c][a]["asr"] for c in concepts],
                                              [_n(by_concept[c][a], "asr") for c in concepts]) for a in attacks},
                     "worst_asr": mean_interval([cell["asr"] for cell in worst], [_n(cell, "asr") for cell in worst])}
        methods[m] = row
    concepts = sorted({c for by_concept in grid.values() for c in by_concept})
    return {"profile": profile,
            **({"base_model": {"accuracy": toy["base_model"]["accuracy"]},
                "judge": {"heldout_accuracy": toy["judge"]["heldout_accuracy"]}} if toy else {}),
            "size": {"methods": len(grid), "concepts": len(concepts), "attacks": len(attacks),
                     "cells": len(grid) * len(concepts) * len(attacks)},
            "methods": methods,
            "grid": {m: {c: {a: {**{k: round(v, 4) if isinstance(v, float) else v for k, v in cell.items()
                                    if k != "variants_by_family"},  # per family: the method's means only
                                 "ci": cell_intervals(cell)}
                             for a, cell in by_attack.items()} for c, by_attack in by_concept.items()}
                     for m, by_concept in grid.items()},
            "quality": {m: {c: {k: None if q.get(k) is None else round(q[k], 6) for k in ("fid", "kid")}
                            for c, q in by_concept.items()} for m, by_concept in quality.items()},
            **({"seeds": seed_spread(grid, attacks[0], seeds)} if seeds else {})}


SEED_METRICS = ("target_rate", "heldout_rate", "retention", "variants_rate")


def seed_spread(grid: dict, first_attack: str, seeds: dict) -> dict:
    """Per method trained with several seeds: for each of ``SEED_METRICS``, the mean over concepts at each
    seed, then their mean and sample sd over seeds. ``seeds[m][s][c]``: the attack-free metrics of the
    extra seeds (stage `seeds`); the grid's own cell is the method's own seed."""
    out = {}
    for m, by_seed in seeds.items():
        if not by_seed:
            continue
        concepts = list(grid[m])
        runs = [{c: grid[m][c][first_attack] for c in concepts}, *(by_seed[s] for s in sorted(by_seed))]
        row = {"n_seeds": len(runs)}
        for k in SEED_METRICS:
            values = [fmean(v) for v in ([r[c].get(k) for c in concepts if r[c].get(k) is not None] for r in runs) if v]
            if len(values) == len(runs):
                mean = fmean(values)
                sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
                row[k] = {"mean": round(mean, 4), "sd": round(sd, 4)}
        out[m] = row
    return out


# --- reading it back: the README table, `eraselab compare` -------------------------------------------------
def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ci(row: dict, key: str, attack: str | None = None) -> list[float] | None:
    """A method row's (or cell's) 95 % interval of ``key`` (``asr`` with ``attack``); None in a summary
    written before intervals were (an older commit or experiment)."""
    found = (row.get("ci") or {}).get(key)
    return (found or {}).get(attack) if attack is not None else found


def method_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Method rows: erasure, retention, quality, then ASR per attack and the worst case; each rate with its
    95 % interval where the summary has them."""
    attacks = list(next(iter(summary["methods"].values()))["asr"]) if summary["methods"] else []
    variants = any(r.get("variants_rate") is not None for r in summary["methods"].values())
    header = ["method", "target", "held-out", *(["variants"] if variants else []), "retention", "CLIP", "FID",
              "KID×10³", "Pre-ASR", *(f"ASR {a}" for a in attacks if a != "no_attack"), "worst ASR"]
    rows = []
    for m, r in summary["methods"].items():
        rate = lambda k: fmt_interval(r.get(k), ci(r, k))  # noqa: E731
        rows.append([m, rate("target_rate"), rate("heldout_rate"), *([rate("variants_rate")] if variants else []),
                     rate("retention"), _fmt(r["clip"], 1),
                     _fmt(r["fid"], 1), _fmt(None if r["kid"] is None else r["kid"] * 1e3, 1), rate("pre_asr"),
                     *(fmt_interval(r["asr"][a], ci(r, "asr", a)) for a in attacks if a != "no_attack"),
                     rate("worst_asr")])
    return header, rows


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def markdown_table(summary: dict) -> str:
    header, rows = method_table(summary)
    size = summary["size"]
    caption = (f"Profile `{summary['profile']}`: {size['methods']} methods × {size['concepts']} concepts × "
               f"{size['attacks']} attacks ({size['cells']} cells), means over concepts, from `metrics/summary.json` (its code and data: "
               "`dvc.lock`). "
               "Rates are shares of images that show the concept (lower is better, except retention)"
               + (", each with its 95 % interval (Wilson; [docs/methods-and-attacks.md](docs/methods-and-attacks.md#intervals))"
                  if any(r.get("ci") for r in summary["methods"].values()) else "")
               + "; worst ASR: the highest ASR any attack reached, per concept"
               + ("; variants: natural variations of the training phrasings (repeated, reordered, negated, split, "
                  "long, ...) among those the undefended model draws with the concept"
                  if any(r.get("variants_rate") is not None for r in summary["methods"].values()) else "") + ".")
    if any(r[header.index("FID")] == "–" for r in rows):
        caption += (" FID –: too few images for the feature dimension (the metric spec's `fid_min_images: skip`); "
                    "KID has no such limit.")
    return caption + "\n\n" + md_table(header, rows)


README_START, README_END = "<!-- summary:start -->", "<!-- summary:end -->"


def seed_rows(spread: dict) -> list[list[str]]:
    """One row per trained method of summary ``seeds``: name, number of seeds, each of ``SEED_METRICS`` as
    mean ± sd (– where a seed lacked it)."""
    return [[m, str(row["n_seeds"]), *(f"{row[k]['mean']:.2f} ± {row[k]['sd']:.2f}" if k in row else "–"
                                       for k in SEED_METRICS)] for m, row in spread.items()]


def seed_markdown(summary: dict) -> str:
    """Each trained method's attack-free rates as mean ± sd over its training seeds (summary ``seeds``); empty
    where the profile ran no extra seeds."""
    spread = summary.get("seeds") or {}
    if not spread:
        return ""
    table = md_table(["method", "seeds", "target", "held-out", "retention", "variants"], seed_rows(spread))
    return ("Training seeds: each trained method retrained with `grid.train_seeds` besides its own seed, attack-free "
            "rates (mean over concepts) as mean ± sd over seeds; the attacks above ran on the own seed only.\n\n"
            + table)


def readme_block(summary: dict) -> str:
    seeds = seed_markdown(summary)
    return f"{README_START}\n{markdown_table(summary)}\n" + (f"\n{seeds}\n" if seeds else "") + README_END


def replace_readme_block(text: str, summary: dict, name: str = "README.md") -> str:
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{name}: no `{README_START}` … `{README_END}` block to write the summary table into")
    return text[:start] + readme_block(summary) + text[end + len(README_END):]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda row: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


SHORT = {"unlearndiffatk": "UDA", "ring_a_bell": "RAB", "mma_diffusion": "MMA", "sneakyprompt": "Sneaky"}


def _best(methods: dict, among=None) -> str | None:
    """The method with the lowest worst-case ASR (ties: the higher retention), among ``among`` if given."""
    rows = {m: r for m, r in methods.items() if r["worst_asr"] is not None and (among is None or m in among)}
    return min(rows, key=lambda m: (rows[m]["worst_asr"], -(rows[m]["retention"] or 0))) if rows else None


def compare_table(summary: dict) -> str:
    """One experiment's method × attack ASR table with retention and the worst case (with its 95 % interval),
    for a terminal: ``*`` marks the lowest worst-case ASR, ``=`` each method whose interval overlaps it."""
    methods = summary["methods"]
    attacks = [a for a in next(iter(methods.values()))["asr"] if a != "no_attack"]
    variants = any(r.get("variants_rate") is not None for r in methods.values())
    header = ["method", "target", *(["var"] if variants else []), "retain", "FID", "preASR",
              *(SHORT.get(a, a) for a in attacks), "worst (95% CI)"]
    best = _best(methods)
    rows = []
    for m, r in methods.items():
        mark = " *" if m == best else (" =" if ci(r, "worst_asr") and not separated(ci(r, "worst_asr"),
                                                                                   ci(methods[best], "worst_asr")) else "")
        rows.append([m + mark, _fmt(r["target_rate"]), *([_fmt(r.get("variants_rate"))] if variants else []),
                     _fmt(r["retention"]), _fmt(r["fid"], 1), _fmt(r["pre_asr"]),
                     *(_fmt(r["asr"][a]) for a in attacks), fmt_interval(r["worst_asr"], ci(r, "worst_asr"))])
    return text_table(header, rows)


SEED_SD_NOTED = 0.05  # a training-seed sd of the target rate from 5 points up is named in the opening paragraph


def headline(summary: dict, reference: str = "none") -> str:
    """The report's opening paragraph, generated from the numbers: which defence has the lowest worst-case
    ASR, at what retention and quality cost, against the undefended ``reference``; a difference is called
    only where the 95 % intervals separate; then the methods whose target rate moves with the training seed."""
    return _ranking(summary, reference) + seed_caution(summary)


def seed_caution(summary: dict) -> str:
    """A sentence naming the trained methods whose target rate's sd over training seeds is at least
    ``SEED_SD_NOTED`` (summary ``seeds``); empty where none is, or no extra seeds ran."""
    spread = {m: row["target_rate"] for m, row in (summary.get("seeds") or {}).items() if "target_rate" in row}
    if not spread:
        return ""
    n = max(row["n_seeds"] for row in summary["seeds"].values())
    loose = [m for m, r in spread.items() if r["sd"] >= SEED_SD_NOTED]
    if not loose:
        return (f" Over {n} training seeds every trained method's target rate stays within an sd of "
                f"{SEED_SD_NOTED:.2f}.")
    detail = _joined([f"**{m}** ({spread[m]['mean']:.2f} ± {spread[m]['sd']:.2f})" for m in loose])
    return (f" Over {n} training seeds the target rate (mean ± sd) moves with the seed for {detail}: "
            f"{'its' if len(loose) == 1 else 'their'} single-seed cells above can differ by more than the "
            "gaps between methods.")


def _ranking(summary: dict, reference: str) -> str:
    size, methods = summary["size"], summary["methods"]
    text = (f"Profile `{summary['profile']}`: {size['methods']} methods × {size['concepts']} concepts × "
            f"{size['attacks']} attacks ({size['cells']} cells). ")
    defences = {m: r for m, r in methods.items() if m != reference and r["worst_asr"] is not None}
    if not defences:
        return text + "No defence in this grid besides the reference."
    best = _best(defences)
    worst = max(defences, key=lambda m: defences[m]["worst_asr"])
    b, ref = defences[best], methods.get(reference)
    show = lambda r, k: fmt_interval(r[k], ci(r, k))  # noqa: E731
    text += (f"The lowest worst-case ASR (the highest ASR any attack reached, mean over concepts; 95 % interval "
             f"in brackets) is **{best}**'s, {show(b, 'worst_asr')}, with its target rate {show(b, 'target_rate')} "
             f"and retention {show(b, 'retention')}")
    if ref is not None:
        text += (f" (undefended `{reference}`: worst-case ASR {show(ref, 'worst_asr')}, retention "
                 f"{show(ref, 'retention')})")
    if b["fid"] is not None:
        text += f"; FID {_fmt(b['fid'], 1)} against `{reference}`'s benign images"
    text += f". The highest among the defences is **{worst}**'s, {show(defences[worst], 'worst_asr')}. "
    if ci(b, "worst_asr") is None:
        return text + "This summary carries no intervals: rank the defences with care."
    ties = [m for m in defences if m != best and not separated(ci(defences[m], "worst_asr"), ci(b, "worst_asr"))]
    if ties:
        text += (f"**{best}**'s interval overlaps {_names(ties)}'s: on these images the data do not rank "
                 f"{'it' if len(ties) == 1 else 'them'} against **{best}**.")
    else:
        text += f"**{best}**'s interval separates it from every other defence."
    return text


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _names(names: list[str]) -> str:
    return _joined([f"**{n}**" for n in names])


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
        blocks.append(f"{label}: profile {summary['profile']}, {size['cells']} cells (ASR per attack; * lowest "
                      f"worst-case ASR, = not separated from it by 95 % intervals)\n{compare_table(summary)}")
    return "\n\n".join(blocks)
