"""targets: the undefended model's images of a concept's attack seeds, once per concept: the target every
white-box attack optimises towards, for every method."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ("concept",)


def jobs(params) -> list[Job]:
    from eraselab.registry import declared
    from eraselab.stages.common import gpu, model_deps

    if not any(declared("attacks", a, "sees_defence", True) for a in params.grid.attacks):
        return []
    return [Job("targets", {"concept": c}, [*model_deps(params), paths.concept(c)], [Out(paths.targets(c))],
                ["model", "generate", "grid.threads"], threads=params.grid.threads, mem_mb=3000, gpu=gpu(params))
            for c in params.grid.concepts]


def run(params, concept: str) -> None:
    from eraselab._compat import set_threads
    from eraselab.attacks.base import seed_scales
    from eraselab.erasure.base import Defended
    from eraselab.generate import write_images
    from eraselab.prompts.world_prompts import read_prompts
    from eraselab.stages.common import pipeline, sampling

    set_threads(params.grid.threads)
    seeds = read_prompts(Path(paths.concept(concept)) / "attack_seeds.jsonl")
    config = sampling(params)
    undefended = Defended(pipeline(params), "none", config)
    images = undefended.generate_prompts([r["prompt"] for r in seeds], [r["seed"] for r in seeds],
                                         scales=seed_scales(undefended, seeds))
    write_images(Path(paths.targets(concept)), images, [{**r, "steps": config.steps, "scheduler": config.scheduler}
                                                         for r in seeds])
