"""generate: the toy base model's images of its held-out prompts."""

from __future__ import annotations

import time
from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    if params.model.source != "base_model":
        return []
    return [Job("generate", {}, [paths.BASE_MODEL, paths.HELDOUT_PROMPTS], [Out(paths.BASE_IMAGES)],
                ["model", "generate"], threads=params.generate.threads, mem_mb=3000,
                gpu=params.model.device == "cuda")]


def run(params) -> None:
    from eraselab._compat import set_threads
    from eraselab.generate import generate_prompts, record_scales, write_images
    from eraselab.io import record_timing
    from eraselab.prompts.world_prompts import read_prompts
    from eraselab.stages.common import pipeline, sampling

    g = params.generate
    set_threads(g.threads)
    records = read_prompts(paths.HELDOUT_PROMPTS)
    config = sampling(params)
    pipe = pipeline(params)
    start = time.perf_counter()
    scales = record_scales(records, config)
    images = generate_prompts(pipe, [r["prompt"] for r in records], [r["seed"] for r in records], config, scales=scales)
    elapsed = time.perf_counter() - start
    meta = {"model": paths.BASE_MODEL, "steps": g.steps, "scheduler": g.scheduler}
    write_images(Path(paths.BASE_IMAGES), images, [{**r, **meta, "guidance": s}
                                                  for r, s in zip(records, scales or [g.guidance] * len(records))])
    record_timing(paths.BASE_IMAGES, {"generate_s": elapsed, "images_per_s": len(images) / elapsed})
    print(f"{len(images)} images in {elapsed:.1f} s ({len(images) / elapsed:.1f} img/s)")
