"""Why does Dark Miner leave stripes on prompts that name no colour? Four explanations, each measured.

`residuals.py` showed that Dark Miner's `striped` residual sits mostly in training phrasings without a
colour word (on main's committed run: 10/33 against 4/27). This script tests four explanations on the
grid's own artifacts, split by that same colour-word rule. Both models go through the defended path
(`Defended`), so any method can be probed, inference-time ones included (``--method uce`` for comparison):

1. **A weaker teacher.** Circumventing trains eps(x_t | c) towards the frozen model's eps_0(x_t | anchor).
   If the anchor of a colourless phrasing ("a box") predicts nearly what its concept phrasing ("a striped
   box") predicts, the training signal there is small. Measured: ||eps_0(x_t|prompt) - eps_0(x_t|anchor)||^2
   on x_t noised from the undefended model's image of that prompt, at five timesteps.
2. **Mining misses them.** The mined embeddings (`mined.safetensors`) might lie near colour-named
   encodings only. Measured: cosine similarity of each mined embedding to each phrasing's encoding.
3. **Circumventing does not reach them.** Measured: the same gap as (1) with the erased model on the
   prompt side, ||eps_erased(x_t|prompt) - eps_0(x_t|anchor)||^2, and how much of the original gap it closed.
4. **The erased model draws stripes for the anchors.** Measured: the anchor floor of `residuals.py`
   (anchor prompts x ``--seeds`` seeds, judged), for the original and the erased model, by phrasing.

Usage (repo root, after `dvc repro`): python ablations/colourless_probe.py [--concept striped]
    [--method darkminer] [--draws 8] [--seeds 4] [--threads 2]
Prints Markdown tables; no artifact of the pipeline is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

import eraselab._compat  # noqa: F401  (before torchvision users)
from eraselab._compat import set_threads
from eraselab.attacks.base import image_latents, noised
from eraselab.concepts import Concept
from eraselab.erasure.base import Defended, load_defended
from eraselab.generate import SamplingConfig, read_images
from eraselab.models import load_pipeline
from eraselab.models.judge import load_judge
from eraselab.params import load_params
from residuals import COLOUR_WORD, anchor_floor

TIMESTEPS = (100, 300, 500, 700, 900)


def first_image_per_prompt(folder: Path) -> dict[str, np.ndarray]:
    images, records = read_images(folder)
    out: dict[str, np.ndarray] = {}
    for image, record in zip(images, records):
        out.setdefault(record["prompt"], image)
    return out


@torch.no_grad()
def gaps(original: Defended, erased: Defended, prompt: str, anchor: str, image: np.ndarray,
         generator: torch.Generator, draws: int) -> np.ndarray:
    """Per timestep: [original prompt vs anchor, erased prompt vs original anchor] mean squared eps gaps,
    averaged over ``draws`` noise draws."""
    latent = image_latents(original.pipe, image[None]).expand(draws, -1, -1, -1)
    prompt_0, anchor_0 = (original.encode([text]).expand(draws, -1, -1) for text in (prompt, anchor))
    prompt_erased = erased.encode([prompt]).expand(draws, -1, -1)
    rows = []
    for t in TIMESTEPS:
        x_t, _ = noised(original.pipe, latent, t, generator)
        teacher = original.noise(x_t, t, anchor_0)
        before, after = original.noise(x_t, t, prompt_0), erased.noise(x_t, t, prompt_erased)
        rows.append([((before - teacher) ** 2).mean().item(), ((after - teacher) ** 2).mean().item()])
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concept", default="striped")
    parser.add_argument("--method", default="darkminer")
    parser.add_argument("--draws", type=int, default=8, help="noise draws per phrasing and timestep")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per anchor prompt for the anchor floor")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)

    concept = Concept.from_json(json.loads(Path(f"data/prompts/concepts/{args.concept}/concept.json").read_text()))
    artifact = Path(f"models/erased/{args.method}/{args.concept}")
    images = first_image_per_prompt(Path(f"data/generated/none/{args.concept}/target_train"))
    g = load_params("params.yaml").generate
    sampling = SamplingConfig(steps=g.steps, guidance=g.guidance, scheduler=g.scheduler, batch_size=g.batch_size)
    original = Defended(load_pipeline("models/base", "cpu"), "none", sampling)
    erased = load_defended(load_pipeline("models/base", "cpu"), artifact, sampling)

    pairs = [(p, a) for p, a in zip(concept.erase_prompts, concept.anchor_prompts) if p in images]
    named = np.array([bool(COLOUR_WORD.search(p)) for p, _ in pairs])
    generator = torch.Generator().manual_seed(0)
    # phrasing x timestep x (before, after)
    measured = np.stack([gaps(original, erased, p, a, images[p], generator, args.draws) for p, a in pairs])
    encodings = original.encode([p for p, _ in pairs]).flatten(1)
    mined_file = artifact / "mined.safetensors"  # Dark Miner's; other methods mine nothing
    mined = ([m.flatten() for k, m in sorted(load_file(mined_file).items()) if k != "none"]
             if mined_file.exists() else [])
    cosines = (torch.stack([torch.nn.functional.cosine_similarity(encodings, m[None]) for m in mined]).numpy()
               if mined else np.zeros((0, len(pairs))))

    print(f"{args.method} / {args.concept}: {len(pairs)} training phrasings with an undefended image, "
          f"{len(mined)} mined embeddings\n")
    print("| phrasings | n | teacher gap eps_0(prompt) vs eps_0(anchor), t = " + " / ".join(map(str, TIMESTEPS))
          + " (x1e3) | after erasure, eps_erased(prompt) vs eps_0(anchor) (x1e3) | gap closed at t >= 700 | "
          "mean cosine to mined embeddings |\n|---|---|---|---|---|---|")
    for label, rows in (("colour named", named), ("no colour", ~named)):
        block = measured[rows]
        late = [i for i, t in enumerate(TIMESTEPS) if t >= 700]
        closed = 1 - block[:, late, 1].sum() / block[:, late, 0].sum()
        fmt = lambda v: " / ".join(f"{x * 1e3:.2f}" for x in v)  # noqa: E731
        cos = f"{cosines[:, rows].mean():.3f}" if len(cosines) else "n/a"
        print(f"| {label} | {int(rows.sum())} | {fmt(block[:, :, 0].mean(0))} | {fmt(block[:, :, 1].mean(0))} | "
              f"{closed:.0%} | {cos} |")

    judge = load_judge(Path("models/judge"))
    print(f"\n| anchor floor ({args.seeds} seeds per anchor) | colour named | no colour |\n|---|---|---|")
    for label, model in (("original model", original), (f"after {args.method}", erased)):
        floor = anchor_floor(model, judge, concept, args.seeds)
        hits, named_anchor = floor["hits"], np.array([bool(COLOUR_WORD.search(p)) for p in floor["prompts"]])
        print(f"| {label} | {int(hits[named_anchor].sum())}/{int(named_anchor.sum())} | "
              f"{int(hits[~named_anchor].sum())}/{int((~named_anchor).sum())} |")


if __name__ == "__main__":
    main()
