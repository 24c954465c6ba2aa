"""Toy-world prompt sets.

``heldout``: every (shape, colour, texture) combination named through phrasings the base model never
trained on, with random synonyms; seeds are unique per prompt. It measures whether the model follows
prompts it has not memorised, per concept kind.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from eraselab.errors import MissingInputError
from eraselab.io import atomic_write_text
from eraselab.world import SYNONYMS, caption
from eraselab.world.dataset import WorldSpec
from eraselab.world.vocabulary import HELDOUT, TRAIN_PHRASINGS

PHRASING_SPLITS = {"heldout": HELDOUT, "train": TRAIN_PHRASINGS}


def evaluation_prompts(spec: WorldSpec, per_combination: int, seed: int, split: str = "heldout") -> list[dict]:
    if split not in PHRASING_SPLITS:
        raise ValueError(f"unknown phrasing split {split!r}; valid: {', '.join(PHRASING_SPLITS)}")
    rng = random.Random(f"{seed}-{split}")
    records = []
    for shape, colour, texture in itertools.product(spec.shapes, spec.colours, spec.textures):
        for _ in range(per_combination):
            text = caption(rng.choice(PHRASING_SPLITS[split]), rng.choice(SYNONYMS["shape"][shape]),
                           rng.choice(SYNONYMS["colour"][colour]), rng.choice(SYNONYMS["texture"][texture]))
            records.append({"prompt": text, "labels": {"shape": shape, "colour": colour, "texture": texture},
                            "split": split})
    seeds = rng.sample(range(2**31 - 1), len(records))  # distinct seeds, fixed by the params seed
    for record, s in zip(records, seeds):
        record["seed"] = s
    return records


def write_prompts(path: Path, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_prompts(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path} missing: run `eraselab prompts` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- concept prompt sets for the erasure grid -------------------------------------------------------
CONCEPT_SETS = ("target_train", "target_heldout", "retain")
ANCHOR_SHAPE = "shape"  # an object concept's anchor names no object: "a red shape"


def _kind_of(spec: WorldSpec, concept: str) -> str:
    for kind, names in spec.kinds.items():
        if concept in names:
            return kind
    valid = [c for names in spec.kinds.values() for c in names]
    raise ValueError(f"unknown concept {concept!r}; valid choices: {', '.join(valid)}")


def _words(synonyms: dict, omit: set[str]) -> dict:
    return {k: None if k in omit else synonyms[k] for k in ("shape", "colour", "texture")}


def concept_prompt_set(spec: WorldSpec, concept: str, which: str, n: int, seed: int, stream: str = "eval") -> list[dict]:
    """Prompts for one concept. ``target_train``: synonym 0 in training phrasings (what erasure may see);
    ``target_heldout``: the other synonyms in held-out phrasings; ``retain``: other concepts of the same
    kind. Each record carries the labels the prompt asks for and, for targets, its anchor prompt (the
    same prompt with the concept taken out). ``stream`` keys the random draw: methods fit on a stream
    other than the evaluation's, so a retain set a method preserves is not the one it is scored on."""
    if which not in CONCEPT_SETS:
        raise ValueError(f"unknown prompt set {which!r}; valid: {', '.join(CONCEPT_SETS)}")
    kind = _kind_of(spec, concept)
    rng = random.Random(f"{seed}-{concept}-{which}" + ("" if stream == "eval" else f"-{stream}"))
    records = []
    for _ in range(n):
        labels = {k: rng.choice(v) for k, v in spec.kinds.items()}
        if which == "retain":
            labels[kind] = rng.choice([c for c in spec.kinds[kind] if c != concept])
        else:
            labels[kind] = concept
        phrasings = HELDOUT if which == "target_heldout" else TRAIN_PHRASINGS
        phrasing = rng.choice(phrasings)
        synonyms = {}
        for k, name in labels.items():
            options = SYNONYMS[k][name]
            if k == kind and which == "target_train":
                synonyms[k] = options[0]
            elif k == kind and which == "target_heldout":
                synonyms[k] = rng.choice(options[1:])
            else:
                synonyms[k] = rng.choice(options)
        # other attributes are named half the time, so prompts range from terse to full; held-out prompts
        # keep their texture, without which every noun-phrase form reads like a training phrasing
        optional = ("colour",) if which == "target_heldout" else ("colour", "texture")
        omit = {k for k in optional if k != kind and rng.random() < 0.5}
        words = _words(synonyms, omit)
        record = {"prompt": caption(phrasing, words["shape"], words["colour"], words["texture"]),
                  "labels": {k: v for k, v in labels.items() if k not in omit}, "set": which, "concept": concept}
        if which != "retain":
            anchor = dict(words, **{kind: ANCHOR_SHAPE if kind == "shape" else None})
            record["anchor"] = caption(phrasing, anchor["shape"], anchor["colour"], anchor["texture"])
        records.append(record)
    seeds = rng.sample(range(2**31 - 1), n)
    for record, s in zip(records, seeds):
        record["seed"] = s
    return records


def concept_spec(spec: WorldSpec, concept: str, n: int, seed: int):
    """The `Concept` methods and attacks receive, built from the toy world's prompt sets."""
    from eraselab.concepts import Concept

    kind = _kind_of(spec, concept)
    train = concept_prompt_set(spec, concept, "target_train", n, seed)
    retain = concept_prompt_set(spec, concept, "retain", n, seed, stream="fit")
    return Concept(name=concept, kind=kind, text=SYNONYMS[kind][concept][0], erase_prompts=tuple(r["prompt"] for r in train),
                   anchor_prompts=tuple(r["anchor"] for r in train), retain_prompts=tuple(r["prompt"] for r in retain))
