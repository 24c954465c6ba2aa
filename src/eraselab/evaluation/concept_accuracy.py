"""Prompt-following accuracy: does the judge see, in each image, the concepts its prompt names?"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def concept_accuracy(judge, images: np.ndarray, records: list[dict]) -> dict:
    """Per kind: overall accuracy and per-concept accuracy (over images whose prompt names that concept)."""
    pred = judge.predict(images)
    out = {"accuracy": {}, "per_concept": {}, "n_images": int(len(images))}
    for kind, names in judge.classes.items():
        hits: dict[str, list[bool]] = defaultdict(list)
        for record, p in zip(records, pred[kind]):
            wanted = record["labels"].get(kind)
            if wanted is not None:
                hits[wanted].append(names[p] == wanted)
        flat = [h for v in hits.values() for h in v]
        if flat:
            out["accuracy"][kind] = float(np.mean(flat))
            out["per_concept"][kind] = {c: float(np.mean(v)) for c, v in sorted(hits.items())}
    return out


def clip_score(scorer, images: np.ndarray, records: list[dict]) -> float:
    return float(np.mean(scorer.score(images, [r["prompt"] for r in records])))
