"""defended: everything one defended model draws from fixed prompts, for one concept: its images of the
concept's prompt sets (training and held-out phrasings, retain prompts, attack seeds) and of each
defence-blind attack's prompts (searched once per concept, replayed here)."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ("method", "concept")
SETS = ("target_train", "target_heldout", "retain", "attack_seeds", "variants")  # variants: where written


def jobs(params) -> list[Job]:
    from eraselab.stages.common import gpu, model_deps
    from eraselab.stages.search import blind

    replayed = blind(params)
    return [Job("defended", {"method": m, "concept": c},
                [*model_deps(params), paths.erased(m, c), paths.concept(c), *(paths.search(c, a) for a in replayed)],
                [Out(paths.defended(m, c)), *(Out(paths.attacked(m, c, a)) for a in replayed)],
                ["model", "generate", "grid.threads"], plugins=[("methods", m)], threads=params.grid.threads,
                mem_mb=3000, gpu=gpu(params))
            for m in params.grid.methods for c in params.grid.concepts]


def run(params, method: str, concept: str) -> None:
    import numpy as np

    from eraselab._compat import set_threads
    from eraselab.attacks.base import adversarial_images, load_adversarial, save_adversarial
    from eraselab.erasure.base import load_defended
    from eraselab.generate import record_scales, write_images
    from eraselab.io import atomic_dir
    from eraselab.prompts.world_prompts import read_prompts
    from eraselab.stages.common import pipeline, sampling
    from eraselab.stages.search import blind

    set_threads(params.grid.threads)
    config = sampling(params)
    defended = load_defended(pipeline(params), Path(paths.erased(method, concept)), config)
    folder = Path(paths.concept(concept))
    sets = {which: read_prompts(folder / f"{which}.jsonl") for which in SETS
            if which != "variants" or (folder / f"{which}.jsonl").exists()}
    meta = {"method": defended.method, "steps": config.steps, "scheduler": config.scheduler}
    rendered: dict = {}
    with atomic_dir(paths.defended(method, concept)) as tmp:
        for which, records in sets.items():
            scales = record_scales(records, config)
            keys = [(r["prompt"], r["seed"], s) for r, s in zip(records, scales or [config.guidance] * len(records))]
            if all(k in rendered for k in keys):  # the toy world's seeds are training phrasings: drawn already
                images = [rendered[k] for k in keys]
            else:
                images = defended.generate_prompts([r["prompt"] for r in records], [r["seed"] for r in records],
                                                   progress=True, scales=scales)
                rendered.update(zip(keys, images))
            write_images(tmp / which, np.stack(images),
                         [{**r, **meta, "guidance": k[2]} for r, k in zip(records, keys)])
    for attack in blind(params):
        adversarial = load_adversarial(Path(paths.search(concept, attack)))
        with atomic_dir(paths.attacked(method, concept, attack)) as tmp:
            save_adversarial(tmp, adversarial, adversarial_images(defended, adversarial))
