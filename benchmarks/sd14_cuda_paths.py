"""Every method and attack through the sd14 code path on a GPU: erase in fp32, then defend and attack in fp16.

SD v1.4-shaped random-weight modules (published widths and layer names, depth trimmed by --layers, 512 px),
one-step budgets (`sd_shapes.METHOD_BUDGETS` / `ATTACK_BUDGETS`). Per method: `erase` in fp32 as
`eraselab erase` does, then its artifact loaded into an fp16 pipeline and one image generated; per attack:
one step against each defence's fp16 path. A row is ok or the error it raised: this finds dtype and device
bugs that the CPU tests (fp32) cannot. Writes sd14_cuda_paths.md / .json to OUT (default $OUT).

Usage (repo root, on a GPU machine): python benchmarks/sd14_cuda_paths.py [OUT] [--layers 1] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

import eraselab._compat  # noqa: F401  (before torchvision users)
from eraselab import registry
from eraselab.attacks.base import Checker
from eraselab.erasure.base import EraseContext, load_defended, write_artifact_manifest
from eraselab.generate import SamplingConfig
from eraselab.models.sd_shapes import ATTACK_BUDGETS, METHOD_BUDGETS, build_sd14_like

CONFIG = SamplingConfig(steps=4, guidance=7.5, scheduler="pndm", batch_size=1)
PROMPT, SEED = "a photo of a church", 3


def features(images: np.ndarray) -> torch.Tensor:  # stands in for CLIP's image features (Dark Miner's verifier)
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2) / 255
    return torch.nn.functional.normalize(torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1), dim=-1)


def main() -> None:
    from eraselab.concepts import Concept

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=os.environ.get("OUT") or "logs/benchmarks")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--tokenizer", help="a tokenizer folder where open_clip is missing")
    args = parser.parse_args()
    tokenizer = None
    if args.tokenizer:
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(args.tokenizer)
    concept = Concept(name="church", kind="object", text="church",
                      erase_prompts=("a photo of a church", "a church in a village"),
                      anchor_prompts=("a photo of a building", "a building in a village"),
                      retain_prompts=("a photo of a dog", "a red car on a street"))

    def pipeline(dtype):
        pipe = build_sd14_like(args.latent, seed=0, layers=args.layers, dtype=dtype, device="cuda", tokenizer=tokenizer)
        for module in (pipe.unet, pipe.text_encoder, pipe.vae):
            module.requires_grad_(False)  # as load_pipeline leaves them
        return pipe

    rows, never = [], Checker(present=lambda images: np.zeros(len(images), bool), image_features=features)

    def record(kind, name, fn):
        torch.cuda.reset_peak_memory_stats()
        start, error = time.perf_counter(), None
        try:
            fn()
        except Exception as err:
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:160]}"
            traceback.print_exc()
        rows.append({"kind": kind, "name": name, "ok": error is None, "error": error,
                     "seconds": round(time.perf_counter() - start, 2),
                     "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)})
        print(rows[-1], flush=True)

    artifacts = {}
    workdir = Path(tempfile.mkdtemp())
    for name in registry.METHODS:
        out = workdir / name
        out.mkdir()

        def erase_then_generate(name=name, out=out):
            method = registry.method(name)()
            params = method.Params.model_validate(METHOD_BUDGETS[name])
            log = method.erase(pipeline(torch.float32), concept, params, out, EraseContext(features))
            log.pop("loss", None), log.pop("timing", None)
            write_artifact_manifest(out, name, concept, params, log)
            image = load_defended(pipeline(torch.float16), out, CONFIG).generate_prompts([PROMPT], [SEED])
            assert image.shape[-1] == 3 and image.dtype == np.uint8
            artifacts[name] = out

        record("method: erase fp32, generate fp16", name, erase_then_generate)
    seeds = [{"prompt": PROMPT, "seed": SEED}]
    for method in ("none", "sld", "steerdiff", "darkminer"):  # a weight edit, guidance, the text path, a LoRA
        if method not in artifacts:
            continue
        for name in registry.ATTACKS:
            def attack_step(name=name, method=method):
                undefended = pipeline(torch.float16)
                defended = load_defended(pipeline(torch.float16), artifacts[method], CONFIG)
                attack = registry.attack(name)()
                (adv,) = attack.run(defended, undefended, concept, seeds, attack.Params.model_validate(ATTACK_BUDGETS[name]), never)
                defended.generate(adv.conditioning(defended), [adv.seed])

            record(f"attack fp16 vs {method}", name, attack_step)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "sd14_cuda_paths.json").write_text(json.dumps({"device": torch.cuda.get_device_name(),
                                                                      "layers": args.layers, "rows": rows}, indent=1))
    lines = ["| what | name | ok | error | s | peak GiB |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['kind']} | {r['name']} | {'yes' if r['ok'] else 'NO'} | {r['error'] or ''} | {r['seconds']} | "
              f"{r['peak_gib']} |" for r in rows]
    (Path(args.out) / "sd14_cuda_paths.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
