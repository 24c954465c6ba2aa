"""erase: one method's artifact for one concept (edited weights, a LoRA, or an inference-time config)."""

from __future__ import annotations

import time

from eraselab.stages import Job, Out, paths

KEYS = ("method", "concept")


def jobs(params) -> list[Job]:
    from eraselab.registry import declared
    from eraselab.stages.common import clip_deps, gpu, model_deps

    out = []
    for m in params.grid.methods:
        features = declared("methods", m, "needs_image_features", False)  # judges its own generations (CLIP)
        files_key = declared("methods", m, "input_files", None)  # a params key: concept -> {name: file path}
        for c in params.grid.concepts:
            given = (params.erase.get(m) or {}).get(files_key) or {} if files_key else {}
            files = [v for v in (given.get(c) or {}).values() if isinstance(v, str) and v]
            out.append(Job("erase", {"method": m, "concept": c},
                           [*model_deps(params), paths.concept(c), *(clip_deps(params) if features else []), *files],
                           [Out(paths.erased(m, c)), Out(paths.erase_plot(m, c), directory=False,
                                                         plot={"x": "step", "y": "loss"})],
                           ["model", "grid.threads", f"erase.{m}", *(["evaluation.clip_score"] if features else [])],
                           plugins=[("methods", m)], threads=params.grid.threads, mem_mb=4000, gpu=gpu(params)))
    return out


def run(params, method: str, concept: str) -> None:
    from eraselab import registry
    from eraselab._compat import set_threads
    from eraselab.erasure.base import EraseContext, erase_artifact
    from eraselab.io import atomic_dir, record_timing, write_json
    from eraselab.stages.common import load_concept, pipeline

    set_threads(params.grid.threads)
    c = load_concept(concept)
    eraser = registry.method(method)()
    method_params = eraser.Params.model_validate(params.erase.get(method, {}))
    features = None
    if getattr(eraser, "needs_image_features", False):
        from eraselab.stages.scoring import scorer

        features = scorer(params).image_features
    # Erasure trains in fp32 whatever model.fp16 says, as the originals do (Adam on fp16 weights underflows);
    # its artifacts load into the fp16 pipeline of the later stages.
    pipe = pipeline(params, fp16=False)
    start = time.perf_counter()
    out = paths.erased(method, concept)
    with atomic_dir(out) as tmp:
        curve, timing, log = erase_artifact(method, eraser, pipe, c, method_params, tmp, EraseContext(features))
    write_json(paths.erase_plot(method, concept), curve)
    record_timing(out, {"erase_s": time.perf_counter() - start, **timing})
    print(f"{method} on {concept}: {log}")
