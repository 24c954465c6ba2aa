"""evaluate: every metric of one method on one concept: each attack cell's rates (evaluation.cell) and
the quality cost on benign prompts (FID/KID of its retain images against the reference method's)."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ("method", "concept")


def jobs(params) -> list[Job]:
    from eraselab.stages.common import clip_deps, detector_name, detector_params, judge_deps

    ref = params.evaluation.fid_reference
    return [Job("evaluate", {"method": m, "concept": c},
                [paths.concept(c), paths.defended(m, c), *(paths.attacked(m, c, a) for a in params.grid.attacks),
                 *judge_deps(params, c), *clip_deps(params), *([paths.defended(ref, c)] if ref != m else [])],
                # cached like any output (their numbers reach git in metrics/summary.json, the report's)
                [*(Out(paths.cell_metrics(m, c, a), directory=False) for a in params.grid.attacks),
                 Out(paths.quality(m, c), directory=False)],
                ["grid.threads", "evaluation.fid", "evaluation.fid_reference", *detector_params(params, c)],
                plugins=[("detectors", detector_name(params, c))], threads=params.grid.threads, mem_mb=2000)
            for m in params.grid.methods for c in params.grid.concepts]


def run(params, method: str, concept: str) -> None:
    from eraselab._compat import set_threads
    from eraselab.evaluation.cell import evaluate_cell, unattacked_metrics
    from eraselab.evaluation.fid import compute_fid_kid
    from eraselab.io import write_json
    from eraselab.stages.common import load_concept
    from eraselab.stages.scoring import detector, judge, scorer

    set_threads(params.grid.threads)
    c = load_concept(concept)
    samples = Path(paths.defended(method, concept))
    concept_detector, clip = detector(params, c), scorer(params)
    reference = Path(paths.defended(params.evaluation.fid_reference, concept))
    unattacked = unattacked_metrics(samples, concept_detector, judge(params, concept), clip, reference)  # once
    for attack in params.grid.attacks:
        metrics = evaluate_cell(c, samples, Path(paths.attacked(method, concept, attack)), concept_detector,
                                judge(params, concept), clip, unattacked=unattacked)
        write_json(paths.cell_metrics(method, concept, attack), metrics)
        print(attack, {k: metrics[k] for k in ("target_rate", "pre_asr", "asr", "variants_rate")})
    spec = params.evaluation.fid
    features = scorer(params, spec.clip).image_features if spec.feature_extractor == "clip_image" else None
    ref = params.evaluation.fid_reference
    result = compute_fid_kid(samples / "retain", Path(paths.defended(ref, concept)) / "retain", spec,
                             feature_fn=features, reference=f"{ref}/retain")
    write_json(paths.quality(method, concept), result)
    print({k: result[k] for k in ("fid", "kid")})
