"""Render reports/ from metrics files and generated images; everything inline, no external URLs."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from eraselab.io import atomic_dir, write_json  # noqa: E402
from eraselab.stages import paths  # noqa: E402
from eraselab.report.censor import censor, judge_flags  # noqa: E402
from eraselab.report.cost import CHART as COST_CHART  # noqa: E402
from eraselab.report.cost import SECTION_TITLE as COST_TITLE  # noqa: E402
from eraselab.report.cost import section as cost_section  # noqa: E402
from eraselab.report.figures import asr_heatmaps, figure_png, frontier_plot  # noqa: E402

UPSCALE = 4  # toy images are 32 px: show them at 128 px, pixels kept sharp


SHOWS, CLEAR = (200, 30, 30), (40, 150, 60)  # a strip image's frame: the detector sees the concept / does not


def image_grid(images: np.ndarray, columns: int, verdicts: np.ndarray | None = None) -> np.ndarray:
    """Images tiled ``columns`` wide with a 1 px gap; with ``verdicts``, each framed in red where the detector
    sees the concept and green where it does not."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + 2), columns * (w + 2), c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = r * (h + 2), col * (w + 2)
        if verdicts is not None:
            canvas[top : top + h + 2, left : left + w + 2] = SHOWS if verdicts[i] else CLEAR
        canvas[top + 1 : top + 1 + h, left + 1 : left + 1 + w] = image
    return canvas


def _png(array: np.ndarray, scale: int = 1) -> bytes:
    image = Image.fromarray(array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def loss_plot(log: list[dict]) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, stage, key in ((axes[0], "vae", "psnr"), (axes[1], "unet", "loss")):
        rows = [r for r in log if r["stage"] == stage]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_title(f"{stage}: {key}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return figure_png(fig)


def accuracy_plot(per_concept: dict[str, dict[str, float]]) -> bytes:
    names = [(kind, c) for kind, v in per_concept.items() for c in v]
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.bar(range(len(names)), [per_concept[k][c] for k, c in names], color=[f"C{list(per_concept).index(k)}" for k, _ in names])
    ax.set_xticks(range(len(names)), [c for _, c in names], rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("judge accuracy")
    ax.set_title("base model: per-concept accuracy on held-out phrasings")
    ax.grid(axis="y", alpha=0.3)
    return figure_png(fig)


def _table(header: list[str], rows: list[list], text: bool = False) -> tuple[str, str]:
    """The same table as Markdown and as HTML (``text``: cells of prose, left-aligned)."""
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    h = ('<table class="text">' if text else "<table>") + "<tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in header) + "</tr>"
    h += "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows) + "</table>"
    return "\n".join(md), h


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em;display:block;overflow-x:auto}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}.text td,.text th{text-align:left}img{max-width:100%;image-rendering:pixelated}figcaption{color:#555;font-size:.9em}"""


CELL_METRICS = ("target_rate", "heldout_rate", "pre_asr", "asr", "retention", "clip", "variants_rate",
                "variants_by_family", "n")  # n: the intervals' sizes


def read_grid(params, cells_dir: Path) -> dict:
    """grid[method][concept][attack] = metrics, for exactly the cells params.yaml declares."""
    grid: dict = {}
    for m in params.grid.methods:
        for c in params.grid.concepts:
            for a in params.grid.attacks:
                data = json.loads((Path(cells_dir) / m / c / f"{a}.json").read_text())
                grid.setdefault(m, {}).setdefault(c, {})[a] = {k: data.get(k) for k in CELL_METRICS}
    return grid


def read_seeds(params, metrics_dir: Path) -> dict:
    """seeds[method][seed][concept] = the attack-free metrics of each extra training seed (stage `seeds`)."""
    from eraselab.stages.seeds import extra_seeds, seeded_methods

    out: dict = {}
    for m in seeded_methods(params):
        for s in extra_seeds(params, m):
            for c in params.grid.concepts:
                path = Path(metrics_dir) / Path(paths.seed_metrics(m, c, s)).relative_to(paths.METRICS)
                out.setdefault(m, {}).setdefault(s, {})[c] = json.loads(path.read_text())
    return out


def seed_table(spread: dict) -> tuple[str, str]:
    """Mean ± sd over training seeds per trained method (empty where no extra seeds ran)."""
    from eraselab.report.summary import SEED_METRICS, seed_rows

    if not spread:
        return "", ""
    return _table(["method", "seeds", *SEED_METRICS], seed_rows(spread))


def read_metric_specs(params, cells_dir: Path, quality: dict) -> dict:
    """The declared metric definitions, per concept (detector, CLIP) and for FID/KID: shown with the numbers."""
    m, a = params.grid.methods[0], params.grid.attacks[0]
    specs = {c: json.loads((Path(cells_dir) / m / c / f"{a}.json").read_text()).get("metric_spec")
             for c in params.grid.concepts}
    first = quality[m][params.grid.concepts[0]]["spec"]
    return {"concepts": specs, "fid_kid": first}


def _spec_text(spec: dict) -> str:
    parts = []
    for k, v in spec.items():
        if isinstance(v, dict):
            v = ", ".join(f"{k2}={v2}" for k2, v2 in v.items())
        elif isinstance(v, list):
            v = ", ".join(map(str, v))
        parts.append(f"{k}: {v}")
    return "; ".join(parts)


def metric_definition_rows(specs: dict) -> list[list[str]]:
    """``read_metric_specs``'s declarations as table rows (metric, concepts, definition); concepts with the same
    declaration share a row."""
    rows: dict[tuple[str, str], list[str]] = {}
    for c, spec in specs["concepts"].items():
        for name, key in (("concept detector", "detector"), ("CLIP score", "clip")):
            if spec and spec.get(key):
                rows.setdefault((name, _spec_text(spec[key])), []).append(c)
    out = [[name, ", ".join(concepts), text] for (name, text), concepts in rows.items()]
    if specs.get("fid_kid"):
        out.append(["FID / KID", "all", _spec_text(specs["fid_kid"])])
    return out


def read_quality(params, metrics_dir: Path) -> dict:
    """quality[method][concept] = {fid, kid, spec} (FID/KID of retain images against the reference method)."""
    out: dict = {}
    for m in params.grid.methods:
        for c in params.grid.concepts:
            data = json.loads((Path(metrics_dir) / "quality" / m / f"{c}.json").read_text())
            out.setdefault(m, {})[c] = {"fid": data["fid"], "kid": data["kid"], "spec": data["spec"]}
    return out


def erase_curves_plot(plots_dir: Path, methods: list[str], concepts: list[str]) -> bytes:
    """Each weight-editing method's training loss per concept (inference-time methods have none)."""
    fig, ax = plt.subplots(figsize=(9, 3))
    for i, m in enumerate(methods):
        for j, c in enumerate(concepts):
            path = Path(plots_dir) / "erase" / m / f"{c}.json"
            rows = json.loads(path.read_text()) if path.exists() else []
            if rows:
                ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color=f"C{i}",
                        linestyle=["-", "--", ":", "-."][j % 4], label=f"{m} / {c}", alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7, ncol=3)
    ax.set_title("erasure training loss")
    return figure_png(fig)


def grid_tables(grid: dict, attacks: list[str], quality: dict | None = None) -> list[tuple[str, str, str]]:
    """(title, markdown, html) tables: method x attack ASR, then one table per concept (with KID/FID of the
    benign-prompt images against the reference method when ``quality`` is given). Every rate carries its
    95 % interval (`evaluation.intervals`) where the cells give their ``n``."""
    from eraselab.evaluation.intervals import fmt_interval, mean_interval
    from eraselab.report.summary import cell_intervals

    methods = list(grid)
    concepts = list(next(iter(grid.values())))
    out = []

    def asr_mean(m, a):
        cells = [grid[m][c][a] for c in concepts]
        return fmt_interval(float(np.mean([cell["asr"] for cell in cells])),
                            mean_interval([cell["asr"] for cell in cells], [(cell.get("n") or {}).get("attack_seeds")
                                                                            for cell in cells]))

    rows = [[m] + [asr_mean(m, a) for a in attacks] for m in methods]
    out.append(("ASR by method and attack (mean over concepts; 95 % interval)", *_table(["method", *attacks], rows)))
    for c in concepts:
        variants = any(grid[m][c][attacks[0]].get("variants_rate") is not None for m in methods)
        header = ["method", "target_rate", "heldout_rate", *(["variants (worst family)"] if variants else []),
                  "retention", "Δ retention", "clip",
                  *(["KID×10³", "FID"] if quality else []), "Pre-ASR", *[f"ASR {a}" for a in attacks]]
        kid_fid = lambda m: ([quality[m][c]["kid"] * 1e3, quality[m][c]["fid"] if quality[m][c]["fid"] is not None  # noqa: E731
                              else "–"] if quality else [])
        first = attacks[0]
        ref = grid["none"][c][first]["retention"] if "none" in grid else float("nan")
        delta = lambda r: r - ref if r is not None and ref is not None else None  # noqa: E731  (no labels: real path)

        def rate(cell, k):
            return fmt_interval(cell[k], cell_intervals(cell).get(k))

        def variants_cell(cell):
            by_family = cell.get("variants_by_family") or {}
            worst = max(by_family, key=lambda f: by_family[f]["rate"]) if by_family else None
            return rate(cell, "variants_rate") + (f"; {worst} {by_family[worst]['rate']:.2f}" if worst else "")

        rows = [[m, rate(grid[m][c][first], "target_rate"), rate(grid[m][c][first], "heldout_rate"),
                 *([variants_cell(grid[m][c][first])] if variants else []), rate(grid[m][c][first], "retention"), delta(grid[m][c][first]["retention"]), grid[m][c][first]["clip"],
                 *kid_fid(m), rate(grid[m][c][first], "pre_asr"), *[rate(grid[m][c][a], "asr") for a in attacks]]
                for m in methods]
        out.append((f"Concept: {c} (95 % intervals)", *_table(header, rows)))
    return out


def ablation_tables(ablations_dir: Path | None, profile: str | None = None) -> list[tuple[str, str, str]]:
    """(title, markdown, html) per collected ablation (`eraselab ablation`): rows are DVC experiments; with
    ``profile``, only those run with it (an ablation with none is left out)."""
    from eraselab.report.ablation import table

    out = []
    for path in sorted(Path(ablations_dir).glob("*.json")) if ablations_dir and Path(ablations_dir).is_dir() else []:
        result = json.loads(path.read_text())
        header, rows = table(result, profile)
        if not rows:
            continue
        title = (f"{result['method']} ({path.stem}, profile {profile or 'any'}): {result['attack']} cells, one "
                 "`dvc exp run` per row" + (f"; not run yet: {', '.join(result['missing'])}" if result["missing"] else ""))
        out.append((title, *_table(header, rows)))
    return out


KID_NOTE = ("KID is an unbiased estimator: where a method's benign images do not differ from the reference's, "
            "it scatters around zero and can come out negative; read small negative values as zero.")


def _strip_note(attack: str) -> str:
    """What a cell strip's images are."""
    if attack == "no_attack":
        return "the attack seeds' own prompts through the defence, no attack"
    return f"{attack}'s adversarial prompts through the defence"


def _html_bold(text: str) -> str:
    import re

    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text).replace("`", "")


def build_report(params, metrics_dir: Path, plots_dir: Path, images: np.ndarray, records: list[dict], judge, out: Path,
                 cells_dir: Path, attacks_dir: Path, ablations_dir: Path | None = None,
                 detectors: dict | None = None, timings_dir: Path | None = None,
                 verdicts: dict | None = None) -> dict:
    """``detectors``: concept -> `Detector` for censored real-path concepts (NudeNet blurs its boxes);
    toy concepts are censored with the judge. ``verdicts``: concept -> the `Detector` its cells are scored
    with; each strip image is framed by its verdict. ``timings_dir``: the stage records (logs/stages) behind the
    "Cost of the runs on this machine" section; shown in report.md and index.html only, never in
    metrics.json (they are untracked measurements: metrics.json stays bit-identical across runs and engines).

    Returns the headline summary (`report.summary.build_summary`) that opens the report, for
    metrics/summary.json."""
    metrics_dir = Path(metrics_dir)
    # The toy world's base model, judge and CLIP: absent from a real-path graph (sd14), whose report is the grid
    toy = images is not None and (metrics_dir / "base_model.json").exists()
    summary = {"grid": read_grid(params, cells_dir), "quality": read_quality(params, metrics_dir),
               "ablations": {path.stem: json.loads(path.read_text())["rows"]
                             for path in sorted(Path(ablations_dir).glob("*.json"))}
               if ablations_dir and Path(ablations_dir).is_dir() else {}}
    rp = params.report
    tag = f" (profile {rp.profile})"
    if toy:
        base = json.loads((metrics_dir / "base_model.json").read_text())
        train = {"summary": json.loads((metrics_dir / "base_model_train.json").read_text()),
                 "log": [r for name in ("vae", "unet")
                         for r in json.loads((Path(plots_dir) / "base_model" / f"{name}.json").read_text())]}
        judge_m = json.loads((metrics_dir / "judge.json").read_text())
        clip_m = json.loads((metrics_dir / "clip.json").read_text())
        summary = {"base_model": {"accuracy": base["accuracy"], "clip_score": base["clip_score"],
                                  "vae_psnr_db": train["summary"]["vae_psnr_db"]},
                   "judge": {"heldout_accuracy": judge_m["heldout_accuracy"]},
                   "clip": {"zero_shot_accuracy": clip_m["zero_shot_accuracy"]}, **summary}
        n = min(len(images), rp.grid_columns * rp.grid_rows)
        order = np.linspace(0, len(images) - 1, n).round().astype(int)  # spread over all combinations
        flagged = judge_flags(judge, images[order], rp.censor_concepts)
        grid = image_grid(censor(images[order], flagged, rp.blur_radius), rp.grid_columns)
        kinds = list(base["accuracy"])
        acc_md, acc_html = _table(["kind", "accuracy"], [[k, base["accuracy"][k]] for k in kinds])
        per_rows = [[k, c, v] for k in kinds for c, v in base["per_concept"][k].items()]
        per_md, per_html = _table(["kind", "concept", "accuracy"], per_rows)
        s = train["summary"]
        info_rows = [["VAE PSNR (dB)", s["vae_psnr_db"]], ["CLIP score (tiny open_clip, 100·cos)", base["clip_score"]]]
        info_rows += [[f"params {k} (M)", v] for k, v in s["params_m"].items()]
        info_md, info_html = _table(["quantity", "value"], info_rows)
        judge_md, judge_html = _table(["kind", "judge held-out", "tiny CLIP zero-shot"],
                                      [[k, judge_m["heldout_accuracy"][k], clip_m["zero_shot_accuracy"][k]] for k in kinds])
        captions = [records[i]["prompt"] for i in order[: rp.grid_columns]]
    else:
        n, flagged = 0, np.zeros(0, bool)

    from eraselab.evaluation.detectors import censored  # here: detectors import report.censor
    from eraselab.generate import read_images

    from eraselab.report.summary import build_summary, headline

    seeds = read_seeds(params, metrics_dir)
    short = build_summary(summary["grid"], summary["quality"], params.grid.attacks, rp.profile,
                          summary if toy else None, seeds)
    seed_md, seed_html = seed_table(short.get("seeds") or {})
    tables = grid_tables(summary["grid"], params.grid.attacks, summary["quality"])
    summary["metric_specs"] = read_metric_specs(params, cells_dir, summary["quality"])
    spec_md, spec_html = _table(["metric", "concepts", "declared definition"],
                                metric_definition_rows(summary["metric_specs"]), text=True)
    ablations = ablation_tables(ablations_dir, rp.profile)
    cost = cost_section(timings_dir) if timings_dir is not None else None
    strips, n_blurred, n_shown = {}, int(flagged.sum()), n
    verdicts = verdicts or {}
    for m in params.grid.methods:
        for c in params.grid.concepts:
            for a in params.grid.attacks:
                cell_images, _ = read_images(Path(attacks_dir) / m / c / a / "images")
                cell_images = cell_images[: rp.grid_columns]
                seen = verdicts[c].present(cell_images) if c in verdicts else None  # before any blur
                if detectors and c in detectors:
                    shown, cell_flags = censored(detectors[c], cell_images, rp.blur_radius)
                elif judge is None and detectors:  # no toy judge: every censored concept's own detector decides
                    cell_flags = np.any([d.present(cell_images) for d in detectors.values()], axis=0)
                    shown = censor(cell_images, cell_flags, rp.blur_radius)
                else:
                    cell_flags = judge_flags(judge, cell_images, rp.censor_concepts)
                    shown = censor(cell_images, cell_flags, rp.blur_radius)
                n_blurred, n_shown = n_blurred + int(cell_flags.sum()), n_shown + len(cell_images)
                note = _strip_note(a) + (f"; {int(seen.sum())} of {len(seen)} show {c} (red frame; green: not)"
                                         if seen is not None else "")
                strips[f"cell_{m}_{c}_{a}.png"] = (f"{m} / {c} / {a}", note,
                                                   _png(image_grid(shown, rp.grid_columns, seen), UPSCALE))
    with atomic_dir(out) as tmp:
        files = {**({"grid.png": _png(grid, UPSCALE), "loss.png": loss_plot(train["log"]),
                    "accuracy.png": accuracy_plot(base["per_concept"])} if toy else {}),
                 "heatmap.png": asr_heatmaps(summary["grid"], params.grid.attacks),
                 "frontier.png": frontier_plot(short),
                 "erase_loss.png": erase_curves_plot(plots_dir, params.grid.methods, params.grid.concepts),
                 **{name: data for name, (_, _, data) in strips.items()},
                 **({COST_CHART: cost["png"]} if cost and cost["png"] else {})}
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        write_json(tmp / "metrics.json", summary)
        blurred = f"{int(flagged.sum())} of {n} images blurred (concepts: {', '.join(rp.censor_concepts) or 'none'})"
        grid_md = "\n\n".join(f"### {title}\n\n{table_md}" for title, table_md, _ in tables)
        ablation_md = ("\n\n".join(f"### {title}\n\n{table_md}" for title, table_md, _ in ablations)
                       or "None run with this profile.")
        strips_md = "\n\n".join(f"**{caption}** ({note})\n\n![{caption}]({name})"
                                  for name, (caption, note, _) in strips.items())
        opening = headline(short, params.evaluation.fid_reference)
        cost_md = f"\n## {COST_TITLE}{tag}\n{cost['md']}\n" if cost else ""
        toy_md = f"""## Base model: prompt following on held-out phrasings{tag}
{base['n_images']} images, judge-scored.

{acc_md}

{per_md}

![per-concept accuracy](accuracy.png)

{info_md}

![training curves](loss.png)

## Judges{tag}
{judge_md}

## Samples{tag} (held-out prompts; {blurred})
First row's prompts: {'; '.join(captions)}

![samples](grid.png)
""" if toy else f"## Base model{tag}\nNone in this profile: the grid runs on a given model (model.source: hub).\n"
        grid_intro = (f"Methods: {', '.join(params.grid.methods)}; concepts: {', '.join(params.grid.concepts)}; "
                      f"attacks: {', '.join(params.grid.attacks)}. {n_blurred} of {n_shown} images in this report "
                      "are blurred because the detector flags them (censored concepts: "
                      f"{', '.join(rp.censor_concepts) or 'none'}).")
        md = f"""# eraselab report

{opening}

## Erasure grid{tag}
{grid_intro}

![ASR heatmaps](heatmap.png)

![ASR vs retention](frontier.png)

{KID_NOTE}

{grid_md}

## Images per cell{tag}
Up to the first {rp.grid_columns} images of each cell, each framed by the concept detector's verdict.

{strips_md}

![erasure training loss](erase_loss.png)

## Metric definitions{tag}
Every metrics file carries these declarations (reports/metrics.json has them in full); numbers are
comparable only between equal definitions.

{spec_md}

## Training seeds{tag}
{seed_md or "None run: set grid.train_seeds to retrain each trained method with other seeds."}

## Ablations{tag}
{ablation_md}

{toy_md}{cost_md}"""
        (tmp / "report.md").write_text(md)
        img = lambda name, alt: f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(files[name]).decode()}">'  # noqa: E731
        cost_html = (f"<h2>{COST_TITLE}{tag}</h2>{cost['html']}"
                     + (f"<figure>{img(COST_CHART, 'per-stage cost')}</figure>" if cost["png"] else "") + "\n"
                     if cost else "")
        toy_html = f"""<h2>Base model: prompt following on held-out phrasings{tag}</h2><p>{base['n_images']} images, judge-scored.</p>
{acc_html}{per_html}<figure>{img('accuracy.png', 'per-concept accuracy')}</figure>
{info_html}<figure>{img('loss.png', 'training curves')}</figure>
<h2>Judges{tag}</h2>{judge_html}
<h2>Samples{tag}</h2><figure>{img('grid.png', 'sample grid')}<figcaption>Held-out prompts; {html.escape(blurred)}.
First row: {html.escape('; '.join(captions))}</figcaption></figure>
""" if toy else f"<h2>Base model{tag}</h2><p>None in this profile: the grid runs on a given model (model.source: hub).</p>\n"
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>eraselab report ({html.escape(rp.profile)})</title><style>{CSS}</style></head>
<body><h1>eraselab report</h1>
<p>{_html_bold(html.escape(opening))}</p>
<h2>Erasure grid{tag}</h2><p>{html.escape(grid_intro)}</p>
<figure>{img('heatmap.png', 'ASR heatmaps')}</figure>
<figure>{img('frontier.png', 'ASR vs retention')}</figure>
<p>{html.escape(KID_NOTE)}</p>
{''.join(f"<h3>{html.escape(title)}</h3>{table_html}" for title, _, table_html in tables)}
<h2>Images per cell{tag}</h2><p>Up to the first {rp.grid_columns} images of each cell, each framed by the concept detector's verdict.</p>
{''.join(f"<figure>{img(name, caption)}<figcaption>{html.escape(caption)}: {html.escape(note)}</figcaption></figure>" for name, (caption, note, _) in strips.items())}
<figure>{img('erase_loss.png', 'erasure training loss')}</figure>
<h2>Metric definitions{tag}</h2><p>Every metrics file carries these declarations (reports/metrics.json has them
in full); numbers are comparable only between equal definitions.</p>{spec_html}
<h2>Training seeds{tag}</h2>{seed_html or "<p>None run: set grid.train_seeds to retrain each trained method with other seeds.</p>"}<h2>Ablations{tag}</h2>{''.join(f"<h3>{html.escape(title)}</h3>{table_html}" for title, _, table_html in ablations) or "<p>None run with this profile.</p>"}
{toy_html}{cost_html}</body></html>"""
        (tmp / "index.html").write_text(page)
    return short
