"""Base-model benchmark: training time (from the run's own timing) and generation throughput.

Usage (in the repo root, after `make run`): python benchmarks/base_model.py [--threads 2]
Prints a Markdown table for docs/benchmarks.md. Speed targets live here, never in timed unit tests.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import eraselab._compat  # noqa: F401  (before torchvision users)
from eraselab._compat import set_threads
from eraselab.generate import SamplingConfig, generate_prompts
from eraselab.models import load_pipeline

ROOT = Path.cwd()  # the checkout to measure: run from its root
TRAIN_TARGET_S = 20 * 60  # issue 2: VAE + UNet + text encoder in <= 20 minutes on the 2-core machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=str(ROOT / "models" / "base"))
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    set_threads(args.threads)

    timing_file = ROOT / "logs" / "timing" / "models" / "base.json"  # written by the base_model stage
    timing = json.loads(timing_file.read_text())
    total = timing["vae_s"] + timing["unet_text_s"]
    rows = [("base-model training, VAE (s)", f"{timing['vae_s']:.0f}"),
            ("base-model training, UNet + text encoder (s)", f"{timing['unet_text_s']:.0f}"),
            ("base-model training, total (s)", f"{total:.0f} (target <= {TRAIN_TARGET_S}: "
                                                f"{'met' if total <= TRAIN_TARGET_S else 'missed'})")]

    pipe = load_pipeline(args.model, device="cpu")
    for batch in (1, 16, 64):
        config = SamplingConfig(steps=args.steps, guidance=4.0, batch_size=batch)
        prompts, seeds = ["a red star"] * batch, list(range(batch))
        generate_prompts(pipe, prompts[:1], seeds[:1], config, progress=False)  # warm-up
        start = time.perf_counter()
        n = max(batch, 64)
        generate_prompts(pipe, ["a red star"] * n, list(range(n)), config, progress=False)
        rate = n / (time.perf_counter() - start)
        rows.append((f"generation, {args.steps} DDIM steps, CFG, batch {batch} (img/s)", f"{rate:.1f}"))

    print(f"Machine: {platform.processor() or platform.machine()}, torch threads {args.threads}\n")
    print("| benchmark | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
