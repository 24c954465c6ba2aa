"""Where does an erased concept survive? Two measurements on the toy world, from the grid's own artifacts.

1. **Anchor floor**: how often the *undefended* model shows the concept when prompted with the anchors,
   i.e. the erase prompts with the concept taken out. A method that maps the concept to its anchor
   (UCE, Dark Miner's circumventing) cannot be expected to go below this rate.
2. **Residuals by phrasing**: each method's target rate on its defended images (`data/generated/<method>/
   <concept>/target_*`), split by whether the prompt also names a colour. Dark Miner's `striped`
   residual lives almost only in prompts that name no colour.

Usage (repo root, after `dvc repro`): python ablations/residuals.py [--concept striped]
    [--methods none uce esd_x darkminer steerdiff] [--seeds 4] [--threads 2] [--json PATH]
Prints Markdown tables; no artifact of the pipeline is written.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

import eraselab._compat  # noqa: F401  (before torchvision users)
from eraselab._compat import set_threads
from eraselab.concepts import Concept
from eraselab.erasure.base import Defended
from eraselab.evaluation.cell import concept_present
from eraselab.generate import SamplingConfig, read_images
from eraselab.io import write_json
from eraselab.models import load_pipeline
from eraselab.models.judge import load_judge
from eraselab.params import load_params
from eraselab.world.vocabulary import SYNONYMS

COLOUR_WORD = re.compile(r"\b(" + "|".join(w for ws in SYNONYMS["colour"].values() for w in ws) + r")\b")


def anchor_floor(model: Defended, judge, concept: Concept, seeds: int) -> dict:
    """Rate of ``concept`` in ``model``'s images of every anchor prompt, ``seeds`` seeds each (per image in
    ``hits``); ``model`` is a (possibly defended) generation path."""
    prompts = [a for a in concept.anchor_prompts for _ in range(seeds)]
    seed_list = [s for _ in concept.anchor_prompts for s in range(seeds)]
    images = model.generate_prompts(prompts, seed_list)
    predicted = judge.predict(images)[concept.kind]
    names = judge.classes[concept.kind]
    counts = np.bincount(predicted, minlength=len(names))
    hits = concept_present(judge, images, concept)
    return {"images": len(images), "rate": float(hits.mean()), "classes": dict(zip(names, counts.tolist())),
            "hits": hits, "prompts": prompts}


def residuals(judge, concept: Concept, folder: Path) -> dict:
    """Target rate of one method's defended images, split by whether the prompt names a colour."""
    out = {}
    for split in ("target_train", "target_heldout"):
        images, records = read_images(folder / split)
        hit = concept_present(judge, images, concept)
        named = np.array([bool(COLOUR_WORD.search(r["prompt"])) for r in records])
        out[split] = {"all": (int(hit.sum()), len(hit)),
                      "colour named": (int(hit[named].sum()), int(named.sum())),
                      "no colour": (int(hit[~named].sum()), int((~named).sum()))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concept", default="striped")
    ap.add_argument("--methods", nargs="+", default=["none", "uce", "esd_x", "esd_u", "darkminer", "steerdiff"])
    ap.add_argument("--seeds", type=int, default=4, help="seeds per anchor prompt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    set_threads(args.threads)
    params = load_params("params.yaml")
    concept_file = Path("data/prompts/concepts") / args.concept / "concept.json"
    if not concept_file.exists():
        raise SystemExit(f"{concept_file} missing: run `dvc repro concept_prompts@{args.concept}` first")
    concept = Concept.from_json(json.loads(concept_file.read_text()))
    missing = [m for m in args.methods if not (Path("data/generated") / m / args.concept).exists()]
    if missing:
        raise SystemExit(f"no defended images for {missing} on {args.concept}: run their defended_images stages")
    judge = load_judge(Path("models/judge"))
    g = params.generate
    sampling = SamplingConfig(steps=g.steps, guidance=g.guidance, scheduler=g.scheduler, batch_size=g.batch_size)
    floor = anchor_floor(Defended(load_pipeline("models/base", device="cpu"), "none", sampling), judge, concept,
                         args.seeds)
    print(f"## Anchor floor, `{args.concept}`: the undefended model on {len(concept.anchor_prompts)} anchor "
          f"prompts × {args.seeds} seeds\n")
    print(f"rate {floor['rate']:.3f} ({floor['images']} images); judge classes: {floor['classes']}\n")
    print(f"## Target rate by phrasing, `{args.concept}` (hits / prompts)\n")
    print("| method | train: colour named | train: no colour | held-out: colour named | held-out: no colour |")
    print("|---|---|---|---|---|")
    table = {}
    for method in args.methods:
        r = table[method] = residuals(judge, concept, Path("data/generated") / method / args.concept)
        cells = [f"{h}/{n} ({h / n:.2f})" if n else "–" for split in ("target_train", "target_heldout")
                 for h, n in (r[split]["colour named"], r[split]["no colour"])]
        print(f"| {method} | " + " | ".join(cells) + " |")
    if args.json:
        summary = {k: v for k, v in floor.items() if k not in ("hits", "prompts")}  # per-image detail stays out
        write_json(args.json, {"concept": args.concept, "anchor_floor": summary, "residuals": table})


if __name__ == "__main__":
    main()
