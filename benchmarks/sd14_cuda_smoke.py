"""SD v1.4 CUDA smoke: the sd14 code path on random-weight modules of SD v1.4's full shape, timed.

Builds SD v1.4's UNet, VAE and CLIP text encoder at their published configs (random weights, 64 x 64
latents = 512 px) on the GPU and runs what the sd14 profile runs: generation (PNDM, 50 steps, CFG 7.5,
batch 1 and 8, with and without attention slicing) and one step of UnlearnDiffAtk, P4D-N and CCE in fp16
with frozen weights, as `eraselab attack` runs them; one ESD-x and one ESD-u step in fp32 (with and without
slicing), as `eraselab erase` trains; and UnlearnDiffAtk in fp32 with weights frozen vs trainable. Per row: seconds per step and peak GPU memory (torch.cuda.max_memory_allocated). A stage that
fails (e.g. a dtype mismatch in fp16) is recorded with its error and the run goes on.

Usage (repo root):  python benchmarks/sd14_cuda_smoke.py [OUT_DIR] [--device cuda] [--latent 64] [--layers N]
Writes sd14_cuda_smoke.md and sd14_cuda_smoke.json to OUT_DIR (default: $OUT, else logs/benchmarks), after
every row, so a run cut short still leaves what it measured. Random weights: compute and memory, not quality.
A CPU dry run of the same code: --device cpu --latent 8 --layers 1 --steps 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import eraselab._compat  # noqa: F401  (before torchvision users)
from eraselab import registry
from eraselab.attacks.base import Checker
from eraselab.erasure.base import Defended
from eraselab.generate import SamplingConfig
from eraselab.io import atomic_write_text, write_json
from eraselab.models.sd_shapes import build_sd14_like
from eraselab.concepts import Concept

GUIDANCE, SCHEDULER = 7.5, "pndm"  # profiles/sd14.yaml's generate settings
ESD_PROFILE = {"lr": 1.0e-5, "batch_size": 1, "trajectory_steps": 50, "trajectory_guidance": 3.0}  # profiles/sd14.yaml
ATTACK_PROFILE = {"tokens": 5, "timesteps": 1, "vocabulary": "full"}  # one block of steps at one timestep
# Per-step cost = (run with many steps - run with one) / the difference: set-up (a UNet copy, saving the edit,
# the attack's three generations) cancels out. An attack step is far cheaper than its three generations of
# 50 steps, so it needs more steps to rise above their run-to-run noise.
STEPS_FEW, STEPS_MANY = 1, 4
ATTACK_STEPS_MANY = 21


# a concept as the real path would give it (no world, no params: the device may lack open_clip)
CONCEPT = Concept(name="church", kind="object", text="church",
                  erase_prompts=("a photo of a church", "a church in a village", "a painting of a church"),
                  anchor_prompts=("a photo of a building", "a building in a village", "a painting of a building"),
                  retain_prompts=("a photo of a dog", "a red car on a street"))


def never(images: np.ndarray) -> np.ndarray:  # the success oracle: never satisfied, so the budget is spent
    return np.zeros(len(images), bool)


def pooled_colours(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2) / 255
    return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


class Recorder:
    """Times a call, reads its peak GPU memory, keeps the row and rewrites the report files."""

    def __init__(self, out: Path, device: torch.device, meta: dict):
        self.out, self.device, self.meta, self.rows = out, device, meta, []

    def measure(self, fn) -> tuple[float, float | None, str | None]:
        cuda = self.device.type == "cuda"
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start, error = time.perf_counter(), None
        try:
            fn()
        except Exception as err:  # a stage that breaks is a result too: record it and go on
            error = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        return seconds, peak, error

    def add(self, **row) -> None:
        self.rows.append(row)
        print(self.markdown_row(row), flush=True)
        self.write()

    @staticmethod
    def markdown_row(r: dict) -> str:
        cell = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
        return (f"| {r['stage']} | {r['dtype']} | {'on' if r['slicing'] else 'off'} | {r['batch']} | "
                f"{cell(r['s_per_step'], '.3f')} | {cell(r['total_s'], '.1f')} | {cell(r['peak_gib'], '.2f')} | "
                f"{r.get('note') or r.get('error') or ''} |")

    def write(self) -> None:
        head = ("| stage | dtype | attention slicing | batch | s/step | total s | peak GPU GiB | note / error |\n"
                "|---|---|---|---|---|---|---|---|")
        meta = ", ".join(f"{k} {v}" for k, v in self.meta.items())
        table = "\n".join([f"SD v1.4-shaped random-weight modules; {meta}\n", head,
                           *map(self.markdown_row, self.rows)])
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "sd14_cuda_smoke.md", table + "\n")
        write_json(self.out / "sd14_cuda_smoke.json", {"meta": self.meta, "rows": self.rows})


def set_slicing(pipe, on: bool) -> None:
    pipe.enable_attention_slicing() if on else pipe.disable_attention_slicing()


def bench_generation(rec: Recorder, pipe, dtype: str, slicing: bool, steps: int, batches: list[int]) -> None:
    for batch in batches:
        config = SamplingConfig(steps=steps, guidance=GUIDANCE, scheduler=SCHEDULER, batch_size=batch)
        defended = Defended(pipe, "none", config)
        prompts, seeds = ["a photo of a cat"] * batch, list(range(batch))
        seconds, peak, error = rec.measure(lambda: defended.generate_prompts(prompts, seeds))
        rec.add(stage=f"generate, {steps} {SCHEDULER} steps, CFG", dtype=dtype, slicing=slicing, batch=batch,
                total_s=seconds, s_per_step=None if error else seconds / steps, peak_gib=peak, error=error,
                note=None if error else f"{batch * steps / seconds:.2f} img-steps/s")


def bench_esd(rec: Recorder, pipe, name: str, dtype: str, slicing: bool, concept, trajectory_steps: int) -> None:
    method = registry.method(name)()
    runs = {}
    for steps in (STEPS_FEW, STEPS_MANY):
        params = method.Params.model_validate({**ESD_PROFILE, "trajectory_steps": trajectory_steps, "steps": steps})
        with tempfile.TemporaryDirectory() as out:
            runs[steps] = rec.measure(lambda: method.erase(pipe, concept, params, Path(out)))
        if runs[steps][2]:
            break
    few, many = runs[STEPS_FEW], runs.get(STEPS_MANY)
    error = few[2] or (many[2] if many else None)
    per_step = None if error else (many[0] - few[0]) / (STEPS_MANY - STEPS_FEW)
    rec.add(stage=f"{name} step (trajectory of up to {trajectory_steps} DDIM steps, CFG)", dtype=dtype,
            slicing=slicing, batch=1, total_s=few[0], s_per_step=per_step,
            peak_gib=max(r[1] for r in runs.values()) if few[1] is not None else None, error=error,
            note=None if error else f"total = one-step run incl. UNet copy + saving the edit; s/step from "
                                    f"{STEPS_MANY} vs {STEPS_FEW} steps (x_t's trajectory length is random)")


# Each attack at the sd14 profile's settings but a small budget: (params, key of the step count, few, many).
ATTACKS = {
    "unlearndiffatk": ({**ATTACK_PROFILE}, "steps_per_timestep", STEPS_FEW, ATTACK_STEPS_MANY),
    "p4d_n": ({"free_tokens": 16, "eval_every": 1000, "stop_on_success": False, "vocabulary": "full"}, "iterations",
              STEPS_FEW, ATTACK_STEPS_MANY),
    "cce": ({"batch_size": 4}, "steps", STEPS_FEW, ATTACK_STEPS_MANY),
}


def bench_attack(rec: Recorder, pipe, dtype: str, slicing: bool, concept, steps: int, frozen: bool,
                 name: str = "unlearndiffatk", seeds_n: int = 1) -> None:
    attack = registry.attack(name)()
    settings, key, few_steps, many_steps = ATTACKS[name]
    config = SamplingConfig(steps=steps, guidance=GUIDANCE, scheduler=SCHEDULER, batch_size=1)
    checker = Checker(present=never, image_features=pooled_colours)
    seeds = [{"prompt": concept.erase_prompts[0], "seed": 1 + i} for i in range(seeds_n)]  # one batch (seed_batch)
    pipe.unet.requires_grad_(not frozen)
    pipe.text_encoder.requires_grad_(not frozen)
    runs = {}
    for k in (few_steps, many_steps):
        batch = {"seed_batch": seeds_n} if "seed_batch" in attack.Params.model_fields else {}
        params = attack.Params.model_validate({**settings, key: k, **batch})
        defended = Defended(pipe, "none", config)
        runs[k] = rec.measure(lambda: attack.run(defended, pipe, concept, seeds, params, checker))
        for module in (pipe.unet, pipe.text_encoder):
            module.zero_grad(set_to_none=True)  # the attack leaves .grad on model weights that require it
        if runs[k][2]:
            break
    pipe.unet.requires_grad_(False)  # as load_pipeline leaves them
    pipe.text_encoder.requires_grad_(False)
    few, many = runs[few_steps], runs.get(many_steps)
    error = few[2] or (many[2] if many else None)
    weights = "weights frozen (as load_pipeline leaves them)" if frozen else "weights require grad"
    rec.add(stage=f"{name} step, full vocabulary, {weights}", dtype=dtype, slicing=slicing,
            batch=seeds_n, total_s=few[0], s_per_step=None if error else (many[0] - few[0]) / (many_steps - few_steps),
            peak_gib=max(r[1] for r in runs.values()) if few[1] is not None else None, error=error,
            note=None if error else f"total = one-step run incl. its reference generations of {steps} steps; "
                                    f"s/step from {many_steps} vs {few_steps} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=os.environ.get("OUT") or "logs/benchmarks")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--latent", type=int, default=64, help="latent side (64 = SD's 512 px)")
    parser.add_argument("--layers", type=int, default=None, help="trim depth (default: SD v1.4's)")
    parser.add_argument("--steps", type=int, default=50, help="sampler steps (generation, attack queries)")
    parser.add_argument("--trajectory-steps", type=int, default=ESD_PROFILE["trajectory_steps"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-fp32", action="store_true", help="only the profile's fp16 rows")
    parser.add_argument("--attack-seeds", type=int, nargs="+", default=[1],
                        help="seed prompts per attack batch (the attacks' seed_batch)")
    parser.add_argument("--only-attacks", action="store_true", help="skip generation and erasure rows")
    parser.add_argument("--tokenizer", help="a tokenizer folder (vocab.json, merges.txt) where open_clip is missing")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no CUDA device; for a CPU dry run: "
                         "--device cpu --latent 8 --layers 1 --steps 2")
    import diffusers
    import transformers

    meta = {"device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "latent": args.latent, "pixels": args.latent * 8,
            "layers": args.layers or "SD v1.4 (full)", "sampler steps": args.steps}
    rec = Recorder(Path(args.out), device, meta)
    concept = CONCEPT
    tokenizer = None
    if args.tokenizer:
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(args.tokenizer)
    half = torch.float16 if device.type == "cuda" else torch.bfloat16  # CPU has no fast fp16 convolutions

    dtypes = [half] + ([] if args.skip_fp32 else [torch.float32])
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        pipe = build_sd14_like(args.latent, seed=0, layers=args.layers, dtype=dtype, device=device, tokenizer=tokenizer)
        weights = sum(p.numel() * p.element_size() for m in (pipe.unet, pipe.vae, pipe.text_encoder)
                      for p in m.parameters()) / 2**30
        rec.add(stage="resident weights (UNet + VAE + text encoder)", dtype=name, slicing=False, batch=0,
                total_s=None, s_per_step=None, peak_gib=weights, note="parameters only")
        Defended(pipe, "none", SamplingConfig(steps=2, guidance=GUIDANCE, scheduler=SCHEDULER)).generate_prompts(
            ["warm-up"], [0])  # kernels, allocator and tokenizer warm before anything is timed
        if dtype == half:  # the profile: generation and attacks in fp16, weights frozen
            for slicing in () if args.only_attacks else (False, True):
                set_slicing(pipe, slicing)
                bench_generation(rec, pipe, name, slicing, args.steps, args.batches)
            set_slicing(pipe, False)
            for attack in ATTACKS:
                batched = "seed_batch" in registry.attack(attack).Params.model_fields  # CCE learns one token
                for n in args.attack_seeds if batched else [1]:
                    bench_attack(rec, pipe, name, False, concept, args.steps, frozen=True, name=attack, seeds_n=n)
        else:  # erasure trains in fp32, as `eraselab erase` does whatever model.fp16 says
            for slicing in (False, True):
                set_slicing(pipe, slicing)
                bench_esd(rec, pipe, "esd_x", name, slicing, concept, args.trajectory_steps)
                bench_esd(rec, pipe, "esd_u", name, slicing, concept, args.trajectory_steps)
            set_slicing(pipe, False)
            bench_attack(rec, pipe, name, False, concept, args.steps, frozen=False)
            bench_attack(rec, pipe, name, False, concept, args.steps, frozen=True)
        del pipe
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"\nwritten: {rec.out / 'sd14_cuda_smoke.md'}, {rec.out / 'sd14_cuda_smoke.json'}")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
