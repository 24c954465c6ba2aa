"""Sampler benchmark: our batched generator vs diffusers' stock StableDiffusionPipeline, same model, same process.

Both run back to back on one loaded pipeline with the same DDIM scheduler config, steps, guidance and batch
size; each (sampler, batch) is warmed up once, then timed ``--repeats`` times (median). Rows: images/s of
ours (`generate_prompts`), of the stock `__call__` at the same batch, and of the stock pipeline called once
per image (how per-image scripts use it). Then a bit-identity check: the stock pipeline gets the exact
initial latents our sampler draws (its ``latents=`` argument) and both uint8 images are compared.

Usage (repo root, after the base model exists): python benchmarks/sampler.py [--model models/base]
    [--threads 1] [--steps 20] [--guidance 4] [--batches 1 8 64] [--images 64] [--repeats 3] [--json PATH]
Prints Markdown tables; target (issue "Benchmarks and speed"): ours >= 1.5x the stock pipeline.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import eraselab._compat  # noqa: F401  (before torchvision users)
from eraselab._compat import set_threads
from eraselab.generate import SCHEDULERS, SamplingConfig, encode_prompts, generate_prompts, initial_latents
from eraselab.io import write_json
from eraselab.models import load_pipeline

TARGET_SPEEDUP = 1.5
PROMPTS = ["a red star", "a blue circle with stripes", "a green triangle on a white background",
           "a yellow cross with dots", "a purple square", "a photo of a striped star"]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Stock float output in [0, 1] -> uint8 as diffusers' own numpy_to_pil rounds it (and as our sampler does)."""
    return (images * 255).round().astype(np.uint8)


def stock(pipe, prompts: list[str], seeds: list[int], steps: int, guidance: float, batch: int, **kwargs) -> np.ndarray:
    """The stock pipeline over ``prompts`` in calls of ``batch``, one CPU generator per image (the noise ours draws)."""
    import torch

    out = []
    for i in range(0, len(prompts), batch):
        generators = [torch.Generator().manual_seed(s) for s in seeds[i : i + batch]]
        result = pipe(prompt=prompts[i : i + batch], num_inference_steps=steps, guidance_scale=guidance,
                      generator=generators, output_type="np", **kwargs)
        out.append(to_uint8(result.images))
    return np.concatenate(out)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, tokenizer caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def identity_check(pipe, steps: int, guidance: float, n: int) -> dict:
    """Ours vs stock on the same initial latents, then also on our prompt embeddings (isolates the text path)."""
    prompts, seeds = [PROMPTS[i % len(PROMPTS)] for i in range(n)], list(range(n))
    config = SamplingConfig(steps=steps, guidance=guidance, scheduler="ddim", batch_size=n)
    ours = generate_prompts(pipe, prompts, seeds, config, progress=False)
    latents = initial_latents(pipe, seeds)
    same_latents = to_uint8(pipe(prompt=prompts, num_inference_steps=steps, guidance_scale=guidance, latents=latents,
                                 output_type="np").images)
    result = {"images": n, "same_latents": compare(ours, same_latents)}
    if not result["same_latents"]["equal"]:
        # The stock pipeline encodes the empty negative prompt once per image (a batch of n), ours once (a
        # batch of 1): different matmul shapes may round differently. Giving it our embeddings tests that.
        uncond = encode_prompts(pipe, [""]).expand(n, -1, -1)
        embeds = to_uint8(pipe(prompt_embeds=encode_prompts(pipe, prompts), negative_prompt_embeds=uncond,
                               num_inference_steps=steps, guidance_scale=guidance, latents=latents,
                               output_type="np").images)
        result["same_latents_and_embeddings"] = compare(ours, embeds)
    return result


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"equal": bool((diff == 0).all()), "max_abs_diff": int(diff.max()),
            "pixels_differing": float((diff > 0).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base", help="a pipeline directory (diffusers layout)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, pinned (both samplers)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--images", type=int, default=64, help="images per timed run (at least the batch)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--identity-images", type=int, default=4)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if min(args.batches + [args.images, args.repeats, args.steps, args.identity_images]) < 1:
        raise SystemExit("--batches, --images, --repeats, --steps and --identity-images must be >= 1")
    set_threads(args.threads)
    if not Path(args.model).is_dir():
        raise SystemExit(f"--model {args.model}: no such pipeline directory; build it with `dvc repro base_model`")
    pipe = load_pipeline(args.model, device="cpu")
    # one scheduler config for both: ours builds DDIM from pipe.scheduler.config per call, stock uses this object
    pipe.scheduler = SCHEDULERS["ddim"].from_config(pipe.scheduler.config)

    timed = {}  # batch -> (images, ours s, stock s)
    for batch in sorted(set(args.batches) | {1}):  # batch 1 of the stock pipeline = one call per image
        n = max(batch, args.images)
        prompts, seeds = [PROMPTS[i % len(PROMPTS)] for i in range(n)], list(range(n))
        config = SamplingConfig(steps=args.steps, guidance=args.guidance, scheduler="ddim", batch_size=batch)
        ours = (median_seconds(lambda: generate_prompts(pipe, prompts, seeds, config, progress=False), args.repeats)
                if batch in args.batches else None)
        theirs = median_seconds(lambda: stock(pipe, prompts, seeds, args.steps, args.guidance, batch), args.repeats)
        timed[batch] = (n, ours, theirs)
    per_image = timed[1][2] / timed[1][0]  # stock seconds per image, called once per image
    rows = [{"batch": b, "images": n, "ours_img_s": n / ours, "stock_img_s": n / theirs,
             "stock_per_image_img_s": 1 / per_image, "speedup": theirs / ours,
             "speedup_vs_per_image": per_image * n / ours}
            for b, (n, ours, theirs) in timed.items() if ours is not None]
    identity = identity_check(pipe, args.steps, args.guidance, args.identity_images)

    print(f"Machine: {platform.processor() or platform.machine()}, torch threads {args.threads}, model {args.model}, "
          f"DDIM {args.steps} steps, guidance {args.guidance}, median of {args.repeats}\n")
    print(f"| batch | images | ours (img/s) | stock, same batch (img/s) | speed-up (target >= {TARGET_SPEEDUP}) | "
          f"stock, one call per image (img/s) | speed-up vs per-image |\n|---|---|---|---|---|---|---|")
    for r in rows:
        met = "met" if r["speedup"] >= TARGET_SPEEDUP else "missed"
        print(f"| {r['batch']} | {r['images']} | {r['ours_img_s']:.2f} | {r['stock_img_s']:.2f} | "
              f"{r['speedup']:.2f}x ({met}) | {r['stock_per_image_img_s']:.2f} | {r['speedup_vs_per_image']:.2f}x |")
    print(f"\nBit-identity, {identity['images']} images in one batch (uint8, stock float output rounded as "
          f"diffusers' numpy_to_pil does):\n\n| stock pipeline given | equal | max abs diff | share of values differing |"
          f"\n|---|---|---|---|")
    for key, label in (("same_latents", "our initial latents"),
                       ("same_latents_and_embeddings", "our initial latents and prompt embeddings")):
        if key in identity:
            c = identity[key]
            print(f"| {label} | {'yes' if c['equal'] else 'no'} | {c['max_abs_diff']} | {c['pixels_differing']:.2%} |")
    if args.json:
        write_json(args.json, {"threads": args.threads, "model": args.model, "steps": args.steps,
                               "guidance": args.guidance, "repeats": args.repeats, "rows": rows, "identity": identity})


if __name__ == "__main__":
    main()
