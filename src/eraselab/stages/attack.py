"""attack: red-team one defended model on one concept with an attack that sees the defence (white-box
token searches, textual inversion); its adversarial prompts and their images through the defended path."""

from __future__ import annotations

import time
from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ("method", "concept", "attack")


def seeing(params) -> list[str]:
    from eraselab.registry import declared

    return [a for a in params.grid.attacks if declared("attacks", a, "sees_defence", True)]


def jobs(params) -> list[Job]:
    from eraselab.registry import declared
    from eraselab.stages.common import clip_deps, detector_name, detector_params, gpu, judge_deps, model_deps

    return [Job("attack", {"method": m, "concept": c, "attack": a},
                [*model_deps(params), paths.erased(m, c), paths.concept(c), paths.targets(c), paths.defended(m, c),
                 *judge_deps(params, c),
                 *(clip_deps(params) if declared("attacks", a, "needs_image_features", False) else [])],
                [Out(paths.attacked(m, c, a))],
                ["model", "generate", "grid.threads", f"attack.{a}", *detector_params(params, c)],
                plugins=[("methods", m), ("attacks", a), ("detectors", detector_name(params, c))],
                threads=params.grid.threads, mem_mb=4000, gpu=gpu(params))
            for m in params.grid.methods for c in params.grid.concepts for a in seeing(params)]


def run(params, method: str, concept: str, attack: str) -> None:
    import torch

    from eraselab import registry
    from eraselab._compat import set_threads
    from eraselab.attacks.base import Checker, Shared, adversarial_images, save_adversarial, with_protocol
    from eraselab.erasure.base import load_defended
    from eraselab.io import atomic_dir, record_timing
    from eraselab.prompts.world_prompts import read_prompts
    from eraselab.stages.common import load_concept, pipeline, sampling
    from eraselab.stages.scoring import detector, scorer

    set_threads(params.grid.threads)
    torch.manual_seed(0)
    attacker = registry.attack(attack)()
    attack_params = attacker.Params.model_validate(params.attack.get(attack, {}))
    c = load_concept(concept)
    undefended = pipeline(params)
    defended = load_defended(pipeline(params), Path(paths.erased(method, concept)), sampling(params))
    seeds = read_prompts(Path(paths.concept(concept)) / "attack_seeds.jsonl")
    shared = Shared(targets=_in_seed_order(seeds, paths.targets(concept)),
                    seed_images=_in_seed_order(seeds, f"{paths.defended(method, concept)}/attack_seeds"))
    features = scorer(params).image_features if getattr(attacker, "needs_image_features", False) else None
    checker = Checker(present=detector(params, c).present, image_features=features)
    start = time.perf_counter()
    adversarial = with_protocol(attacker.run(defended, undefended, c, seeds, attack_params, checker=checker,
                                             shared=shared), seeds)
    elapsed = time.perf_counter() - start
    images = adversarial_images(defended, adversarial)
    with atomic_dir(paths.attacked(method, concept, attack)) as tmp:
        save_adversarial(tmp, adversarial, images)
    record_timing(paths.attacked(method, concept, attack), {"attack_s": elapsed})


def _in_seed_order(seeds: list[dict], folder: str):
    """Images of ``folder`` (one per seed prompt, as `targets` and `defended` write them), checked against
    the seeds: a folder from another prompt set is an error, not a silent mismatch."""
    from eraselab.generate import read_images

    images, records = read_images(Path(folder))
    if [(r["prompt"], r["seed"]) for r in records] != [(r["prompt"], r["seed"]) for r in seeds]:
        raise ValueError(f"{folder}: its images are not of this concept's attack seeds; rerun the stage that wrote it")
    return images
