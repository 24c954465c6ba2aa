"""report: reports/ (metrics.json, report.md, index.html, plots) and metrics/summary.json (the headline
numbers, tracked in git) from every metric of the grid."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    from eraselab.stages.common import detector_name, toy_clip
    from eraselab.stages.seeds import extra_seeds, seeded_methods

    toy_model = params.model.source == "base_model"
    judge = any(c not in params.real_concepts for c in params.grid.concepts)
    grid = [(m, c) for m in params.grid.methods for c in params.grid.concepts]
    deps = [*([paths.BASE_METRICS, paths.BASE_TRAIN_METRICS, paths.BASE_PLOTS, paths.BASE_IMAGES] if toy_model else []),
            *([paths.JUDGE_METRICS, paths.JUDGE] if judge else []), *([paths.CLIP_METRICS] if toy_clip(params) else []),
            *(paths.cell_metrics(m, c, a) for m, c in grid for a in params.grid.attacks),
            *(paths.quality(m, c) for m, c in grid), *(paths.erase_plot(m, c) for m, c in grid),
            *(paths.attacked(m, c, a) for m, c in grid for a in params.grid.attacks),
            *(paths.concept(c) for c in params.grid.concepts), paths.ABLATIONS,
            *(paths.seed_metrics(m, c, s) for m in seeded_methods(params) for c in params.grid.concepts
              for s in extra_seeds(params, m))]
    # not a dep: logs/stages (the cost section). Every stage rewrites those untracked records, and a fresh
    # clone has none when the engines build their graphs; they feed no cached result.
    return [Job("report", {}, deps, [Out(paths.REPORTS), Out(paths.SUMMARY, directory=False, metric=True, cache=False)],
                ["grid", "report"], plugins=[("detectors", n) for n in sorted({detector_name(params, c)
                                                                                 for c in params.grid.concepts})],
                mem_mb=2000)]


def run(params) -> None:
    import json

    from eraselab.io import atomic_write_text
    from eraselab.evaluation.detectors import build_detector
    from eraselab.params import detector_choice
    from eraselab.report.build import build_report
    from eraselab.stages import scoring
    from eraselab.stages.common import load_concept

    judge = images = records = None
    if Path(paths.BASE_IMAGES).exists() and params.model.source == "base_model":
        from eraselab.generate import read_images
        from eraselab.models.judge import load_judge

        images, records = read_images(Path(paths.BASE_IMAGES))
        judge = load_judge(Path(paths.JUDGE))
    # real-path concepts to censor: their own detector decides what is blurred (toy ones: the judge)
    detectors = {c: build_detector(detector_choice(params, c).name, detector_choice(params, c).params)
                 for c in params.report.censor_concepts if c in params.real_concepts}
    # each strip image framed by the verdict of the detector its cell is scored with
    verdicts = {c: scoring.detector(params, load_concept(c)) for c in params.grid.concepts}
    summary = build_report(params, Path(paths.METRICS), Path(paths.PLOTS), images, records, judge, Path(paths.REPORTS),
                           Path(paths.METRICS) / "cells", Path("data/attacks"), Path(paths.ABLATIONS), detectors,
                           Path(paths.TIMINGS), verdicts)
    atomic_write_text(paths.SUMMARY, json.dumps(summary, indent=2) + "\n")
    print(f"{paths.REPORTS}/ and {paths.SUMMARY} written: {summary['size']['cells']} cells")
