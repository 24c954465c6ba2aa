"""search: a defence-blind attack's adversarial prompts for a concept, found once (Ring-A-Bell's genetic
search over the undefended text encoder; no_attack's seed prompts as they are). `defended` replays them
through each method's defended path."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ("attack", "concept")


def blind(params) -> list[str]:
    from eraselab.registry import declared

    return [a for a in params.grid.attacks if not declared("attacks", a, "sees_defence", True)]


def jobs(params) -> list[Job]:
    from eraselab.stages.common import gpu, model_deps

    return [Job("search", {"attack": a, "concept": c}, [*model_deps(params), paths.concept(c)],
                [Out(paths.search(c, a))], ["model", f"attack.{a}", "grid.threads"], plugins=[("attacks", a)],
                threads=params.grid.threads, mem_mb=3000, gpu=gpu(params))
            for a in blind(params) for c in params.grid.concepts]


def run(params, attack: str, concept: str) -> None:
    import torch

    from eraselab import registry
    from eraselab._compat import set_threads
    from eraselab.attacks.base import save_adversarial, with_protocol
    from eraselab.io import atomic_dir, record_timing
    from eraselab.prompts.world_prompts import read_prompts
    from eraselab.stages.common import load_concept, pipeline

    set_threads(params.grid.threads)
    torch.manual_seed(0)
    attacker = registry.attack(attack)()
    attack_params = attacker.Params.model_validate(params.attack.get(attack, {}))
    seeds = read_prompts(Path(paths.concept(concept)) / "attack_seeds.jsonl")
    import time

    start = time.perf_counter()
    adversarial = with_protocol(attacker.search(pipeline(params), load_concept(concept), seeds, attack_params), seeds)
    with atomic_dir(paths.search(concept, attack)) as tmp:
        save_adversarial(tmp, adversarial)
    record_timing(paths.search(concept, attack), {"search_s": time.perf_counter() - start})
