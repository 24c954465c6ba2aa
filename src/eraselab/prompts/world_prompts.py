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
        raise FileNotFoundError(f"{path} missing: run `eraselab prompts` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
