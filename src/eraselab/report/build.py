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
from eraselab.report.censor import censor, judge_flags  # noqa: E402

UPSCALE = 4  # toy images are 32 px: show them at 128 px, pixels kept sharp


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    n, h, w, c = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + 2), columns * (w + 2), c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, col * (w + 2) + 1 : col * (w + 2) + 1 + w] = image
    return canvas


def _png(array: np.ndarray, scale: int = 1) -> bytes:
    image = Image.fromarray(array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def loss_plot(log: list[dict]) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for ax, stage, key in ((axes[0], "vae", "psnr"), (axes[1], "unet", "loss")):
        rows = [r for r in log if r["stage"] == stage]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_title(f"{stage}: {key}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    return _figure_png(fig)


def accuracy_plot(per_concept: dict[str, dict[str, float]]) -> bytes:
    names = [(kind, c) for kind, v in per_concept.items() for c in v]
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.bar(range(len(names)), [per_concept[k][c] for k, c in names], color=[f"C{list(per_concept).index(k)}" for k, _ in names])
    ax.set_xticks(range(len(names)), [c for _, c in names], rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("judge accuracy")
    ax.set_title("base model: per-concept accuracy on held-out phrasings")
    ax.grid(axis="y", alpha=0.3)
    return _figure_png(fig)


def _table(header: list[str], rows: list[list]) -> tuple[str, str]:
    """The same table as Markdown and as HTML."""
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    h = "<table><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in header) + "</tr>"
    h += "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>" for row in rows) + "</table>"
    return "\n".join(md), h


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}img{max-width:100%;image-rendering:pixelated}figcaption{color:#555;font-size:.9em}"""


def build_report(params, metrics_dir: Path, plots_dir: Path, images: np.ndarray, records: list[dict], judge, out: Path) -> dict:
    metrics_dir = Path(metrics_dir)
    base = json.loads((metrics_dir / "base_model.json").read_text())
    train = {"summary": json.loads((metrics_dir / "base_model_train.json").read_text()),
             "log": [r for name in ("vae", "unet") for r in json.loads((Path(plots_dir) / "base_model" / f"{name}.json").read_text())]}
    judge_m = json.loads((metrics_dir / "judge.json").read_text())
    clip_m = json.loads((metrics_dir / "clip.json").read_text())

    summary = {
        "base_model": {
            "accuracy": base["accuracy"],
            "clip_score": base["clip_score"],
            "vae_psnr_db": train["summary"]["vae_psnr_db"],
            "train_time_s": round(sum(train["summary"]["time_s"].values()), 1),
        },
        "judge": {"heldout_accuracy": judge_m["heldout_accuracy"]},
        "clip": {"zero_shot_accuracy": clip_m["zero_shot_accuracy"]},
    }

    rp = params.report
    n = min(len(images), rp.grid_columns * rp.grid_rows)
    order = np.linspace(0, len(images) - 1, n).round().astype(int)  # spread over all combinations
    flagged = judge_flags(judge, images[order], rp.censor_concepts)
    grid = image_grid(censor(images[order], flagged, rp.blur_radius), rp.grid_columns)

    kinds = list(base["accuracy"])
    acc_md, acc_html = _table(["kind", "accuracy"], [[k, base["accuracy"][k]] for k in kinds])
    per_rows = [[k, c, v] for k in kinds for c, v in base["per_concept"][k].items()]
    per_md, per_html = _table(["kind", "concept", "accuracy"], per_rows)
    s = train["summary"]
    info_rows = [["VAE PSNR (dB)", s["vae_psnr_db"]], ["training time VAE (s)", s["time_s"]["vae_s"]],
                 ["training time UNet + text encoder (s)", s["time_s"]["unet_text_s"]],
                 ["CLIP score (tiny open_clip, 100·cos)", base["clip_score"]]]
    info_rows += [[f"params {k} (M)", v] for k, v in s["params_m"].items()]
    info_md, info_html = _table(["quantity", "value"], info_rows)
    judge_md, judge_html = _table(["kind", "judge held-out", "tiny CLIP zero-shot"],
                                  [[k, judge_m["heldout_accuracy"][k], clip_m["zero_shot_accuracy"][k]] for k in kinds])
    captions = [records[i]["prompt"] for i in order[: rp.grid_columns]]

    with atomic_dir(out) as tmp:
        files = {"grid.png": _png(grid, UPSCALE), "loss.png": loss_plot(train["log"]),
                 "accuracy.png": accuracy_plot(base["per_concept"])}
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        write_json(tmp / "metrics.json", summary)
        censored = f"{int(flagged.sum())} of {n} images blurred (concepts: {', '.join(rp.censor_concepts) or 'none'})"
        md = f"""# eraselab report

## Base model: prompt following on held-out phrasings
{base['n_images']} images, judge-scored.

{acc_md}

{per_md}

![per-concept accuracy](accuracy.png)

{info_md}

![training curves](loss.png)

## Judges
{judge_md}

## Samples (held-out prompts; {censored})
First row's prompts: {'; '.join(captions)}

![samples](grid.png)
"""
        (tmp / "report.md").write_text(md)
        img = lambda name, alt: f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(files[name]).decode()}">'  # noqa: E731
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>eraselab report</title><style>{CSS}</style></head>
<body><h1>eraselab report</h1>
<h2>Base model: prompt following on held-out phrasings</h2><p>{base['n_images']} images, judge-scored.</p>
{acc_html}{per_html}<figure>{img('accuracy.png', 'per-concept accuracy')}</figure>
{info_html}<figure>{img('loss.png', 'training curves')}</figure>
<h2>Judges</h2>{judge_html}
<h2>Samples</h2><figure>{img('grid.png', 'sample grid')}<figcaption>Held-out prompts; {html.escape(censored)}.
First row: {html.escape('; '.join(captions))}</figcaption></figure>
</body></html>"""
        (tmp / "index.html").write_text(page)
    return summary
