"""The report's grid figures: method × attack ASR heatmaps per concept and the ASR-vs-retention frontier."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def asr_heatmaps(grid: dict, attacks: list[str]) -> bytes:
    """One panel per concept: rows the methods, columns the attacks, each cell its ASR (0 white, 1 dark red),
    the number written in it."""
    methods = list(grid)
    concepts = list(next(iter(grid.values())))
    # one panel per concept, stacked: each as wide as a page allows, its numbers readable
    fig, axes = plt.subplots(len(concepts), 1, figsize=(0.95 * len(attacks) + 3.0,
                                                        (0.38 * len(methods) + 1.2) * len(concepts)), squeeze=False)
    image = None
    for ax, c in zip(axes[:, 0], concepts):
        values = np.array([[grid[m][c][a]["asr"] for a in attacks] for m in methods], float)
        image = ax.imshow(values, cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color="white" if v > 0.6 else "black")
        ax.set_xticks(range(len(attacks)), attacks if ax is axes[-1, 0] else [""] * len(attacks), rotation=30,
                      ha="right", fontsize=9)
        ax.set_yticks(range(len(methods)), methods, fontsize=9)
        ax.set_title(f"concept: {c}", fontsize=10)
    fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.03, pad=0.02, label="ASR (lower is safer)")
    return figure_png(fig)


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names whose (retention, worst-case ASR) no other point beats on both (higher retention, lower ASR),
    ordered by retention."""
    front = [n for n, (r, a) in points.items()
             if not any((r2 >= r and a2 <= a) and (r2 > r or a2 < a) for r2, a2 in points.values())]
    return sorted(front, key=lambda n: points[n][0])


def coincident_labels(points: dict[str, tuple[float, float]], digits: int = 3) -> dict[tuple[float, float], str]:
    """Each distinct place (rounded to ``digits``) and the methods there, comma-joined in their order."""
    places: dict[tuple[float, float], list[str]] = {}
    for name, (x, y) in points.items():
        places.setdefault((round(x, digits), round(y, digits)), []).append(name)
    return {place: ", ".join(names) for place, names in places.items()}


def frontier_plot(summary: dict) -> bytes:
    """Each method's mean retention against its worst-case ASR with their 95 % intervals as error bars (small
    marks: each concept), and the front of methods no other beats on both; real-path concepts, which have no
    labelled retention, are left out."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    points = {}
    for i, (m, row) in enumerate(summary["methods"].items()):
        per_concept = [(by_attack[next(iter(by_attack))]["retention"], max(v["asr"] for v in by_attack.values()))
                       for by_attack in summary["grid"][m].values()]
        per_concept = [(r, a) for r, a in per_concept if r is not None]
        if per_concept:
            ax.scatter(*zip(*per_concept), color=f"C{i}", s=14, alpha=0.35)
        if row["retention"] is not None and row["worst_asr"] is not None:
            points[m] = (row["retention"], row["worst_asr"])
            ci = row.get("ci") or {}
            bars = {axis: None if ci.get(key) is None else [[value - ci[key][0]], [ci[key][1] - value]]
                    for axis, key, value in (("xerr", "retention", row["retention"]), ("yerr", "worst_asr", row["worst_asr"]))}
            if any(bar is not None for bar in bars.values()):
                ax.errorbar(*points[m], **bars, color=f"C{i}", linewidth=0.8, capsize=2, zorder=2.5)
            ax.scatter(*points[m], color=f"C{i}", s=70, edgecolor="black", linewidth=0.6, label=m, zorder=3)
    for point, names in coincident_labels(points).items():  # one label per place: methods that tie share it
        ax.annotate(names, point, textcoords="offset points", xytext=(5, 4), fontsize=7)
    front = pareto_front(points)
    if len(front) > 1:
        ax.plot(*zip(*(points[n] for n in front)), color="black", linestyle="--", linewidth=1, zorder=2,
                label="frontier")
    if not points:
        ax.text(0.5, 0.5, "no labelled retention (real-path concepts)", ha="center", transform=ax.transAxes)
    ax.set_xlabel("retention (other concepts still drawn; mean over concepts)")
    ax.set_ylabel("worst-case ASR (highest over attacks)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if points:
        ax.legend(fontsize=7, loc="upper left")
    ax.set_title("ASR vs retention (bars: 95 % intervals): lower right is better", fontsize=10)
    return figure_png(fig)
