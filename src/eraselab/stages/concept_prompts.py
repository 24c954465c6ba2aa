"""concept_prompts: one concept's prompt sets (target_train, target_heldout, retain, attack seeds, natural
variants) and its concept.json, from the toy world's vocabulary or a real concept's prompt files (I2P, COCO,
UnlearnDiffAtk)."""

from __future__ import annotations

import json

from eraselab.stages import Job, Out, paths

KEYS = ("concept",)


def jobs(params) -> list[Job]:
    out = []
    for c in params.grid.concepts:
        keys = (["world", "prompts.seed", "prompts.per_concept", "prompts.attack_seeds", "prompts.variants_per_family"]
                if c not in params.real_concepts else [f"real_concepts.{c}"])
        out.append(Job("concept_prompts", {"concept": c}, [], [Out(paths.concept(c))], keys, mem_mb=500))
    return out


def toy_variants(train: list[dict], concept: str, p) -> list[dict]:
    """Natural variations of the training phrasings (prompts.variants), composed with the world's own frame."""
    from eraselab.prompts.variants import variant_records
    from eraselab.world import SYNONYMS
    from eraselab.world.vocabulary import FRAMES

    word = next(names[concept][0] for names in SYNONYMS.values() if concept in names)
    background = FRAMES[-1].replace("{np}", "").strip()  # "on a dark background": a second frame
    return variant_records(train, word, p.variants_per_family, p.seed, concept,
                           extra_for=lambda record, rng: {"frame": background if background not in record["prompt"]
                                                          else "in a drawing"})


def run(params, concept: str) -> None:
    from eraselab.io import atomic_dir
    from eraselab.params import real_concept
    from eraselab.prompts.world_prompts import write_prompts
    from eraselab.prompts.world_prompts import CONCEPT_SETS, concept_prompt_set, concept_spec
    from eraselab.world.dataset import WorldSpec

    real = real_concept(params, concept)
    if real is not None:  # the real path: I2P / COCO / inline prompt sets, same files as the toy world's
        from eraselab.prompts.real_prompts import write_real_concept

        write_real_concept(real, paths.concept(concept), key=f"real_concepts.{concept}")
        return
    p = params.prompts
    spec = WorldSpec.from_params(params.world)
    with atomic_dir(paths.concept(concept)) as out:
        for which in CONCEPT_SETS:
            records = concept_prompt_set(spec, concept, which, p.per_concept, p.seed)
            write_prompts(out / f"{which}.jsonl", records)
            if which == "target_train":
                write_prompts(out / "attack_seeds.jsonl", records[: p.attack_seeds])
                if p.variants_per_family:
                    write_prompts(out / "variants.jsonl", toy_variants(records, concept, p))
        (out / "concept.json").write_text(json.dumps(concept_spec(spec, concept, p.per_concept, p.seed).to_json(), indent=2))
