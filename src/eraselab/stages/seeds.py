"""seeds: one trained method retrained on one concept with another training seed (grid.train_seeds), its
images of the concept's prompt sets and their attack-free metrics: the spread one training seed hides.

The grid's cells use each method's own ``erase.<method>.seed``; a job here re-erases with seed ``s``, renders
the concept's training and held-out phrasings, retain prompts and natural variants, and scores them as
`evaluation.cell` does. Only the metrics are kept (the weights and images are rebuilt by a rerun). The report
shows each metric's mean ± sd over all seeds of a method (the grid's and these). Methods say they train with
a seed by the class attribute ``seeded = True``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ("method", "concept", "seed")


def seeded_methods(params) -> list[str]:
    from eraselab.registry import declared

    return [m for m in params.grid.methods if declared("methods", m, "seeded", False)]


def extra_seeds(params, method: str) -> list[int]:
    """grid.train_seeds without the method's own erase.<method>.seed (its grid cells are that seed)."""
    own = (params.erase.get(method) or {}).get("seed", 0)
    return [s for s in dict.fromkeys(params.grid.train_seeds) if s != own]


def jobs(params) -> list[Job]:
    from eraselab.registry import declared
    from eraselab.stages.common import clip_deps, detector_name, detector_params, gpu, judge_deps, model_deps

    ref = params.evaluation.fid_reference
    out = []
    for m in seeded_methods(params):
        features = declared("methods", m, "needs_image_features", False)
        for c in params.grid.concepts:
            for s in extra_seeds(params, m):
                out.append(Job("seeds", {"method": m, "concept": c, "seed": str(s)},
                               [*model_deps(params), paths.concept(c), *judge_deps(params, c), *clip_deps(params),
                                paths.defended(ref, c)],
                               [Out(paths.seed_metrics(m, c, s), directory=False)],
                               ["model", "generate", "grid.threads", f"erase.{m}", "evaluation.fid_reference",
                                *detector_params(params, c), *(["evaluation.clip_score"] if features else [])],
                               plugins=[("methods", m), ("detectors", detector_name(params, c))],
                               threads=params.grid.threads, mem_mb=4000, gpu=gpu(params)))
    return out


def run(params, method: str, concept: str, seed: str) -> None:
    import numpy as np

    from eraselab import registry
    from eraselab._compat import set_threads
    from eraselab.erasure.base import EraseContext, erase_artifact
    from eraselab.evaluation.cell import unattacked_metrics
    from eraselab.generate import record_scales, write_images
    from eraselab.io import SCRATCH, write_json
    from eraselab.prompts.world_prompts import read_prompts
    from eraselab.stages.common import load_concept, pipeline, sampling
    from eraselab.stages.scoring import detector, judge, scorer

    set_threads(params.grid.threads)
    c = load_concept(concept)
    eraser = registry.method(method)()
    method_params = eraser.Params.model_validate({**(params.erase.get(method) or {}), "seed": int(seed)})
    clip = scorer(params)
    config = sampling(params)
    folder = Path(paths.concept(concept))
    Path(SCRATCH).mkdir(parents=True, exist_ok=True)  # a killed run's leftovers there are swept by the next
    with tempfile.TemporaryDirectory(dir=SCRATCH, prefix=f"seeds-{method}-{concept}-{seed}.") as tmp:
        tmp = Path(tmp)
        (tmp / "erased").mkdir()
        erase_artifact(method, eraser, pipeline(params, fp16=False), c, method_params, tmp / "erased",
                       EraseContext(clip.image_features if getattr(eraser, "needs_image_features", False) else None))
        defended = eraser.load(pipeline(params), tmp / "erased", config)
        for which in ("target_train", "target_heldout", "retain", "variants"):
            if not (folder / f"{which}.jsonl").exists():
                continue
            records = read_prompts(folder / f"{which}.jsonl")
            images = defended.generate_prompts([r["prompt"] for r in records], [r["seed"] for r in records],
                                               progress=False, scales=record_scales(records, config))
            write_images(tmp / "images" / which, np.stack(images), records)
        metrics = unattacked_metrics(tmp / "images", detector(params, c), judge(params, concept), clip,
                                     Path(paths.defended(params.evaluation.fid_reference, concept)))
    metrics.pop("train_hits")
    metrics.update(method=method, concept=concept, seed=int(seed))
    write_json(paths.seed_metrics(method, concept, seed), metrics)
    print(f"{method} on {concept}, seed {seed}:", {k: metrics[k] for k in ("target_rate", "heldout_rate", "retention")})
