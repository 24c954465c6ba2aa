"""One CLI for every stage; dvc.yaml and the Snakefile only name these commands.

Each subcommand validates params.yaml first (errors name the key), pins torch's thread count, then
writes its outputs atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _params(args):
    from eraselab.params import load_params

    return load_params(args.params)


def cmd_world(args) -> None:
    from eraselab.world.dataset import WorldSpec, write_world

    p = _params(args).world
    sizes = {"train": p.n_train, "judge_train": p.n_judge_train, "judge_test": p.n_judge_test}
    write_world(WorldSpec.from_params(p), sizes, Path(args.out))


def cmd_base_model(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.io import write_json
    from eraselab.models.base_model import train_base_model

    params = _params(args)
    set_threads(params.base_model.threads)
    summary, log = train_base_model(params, Path(args.world), Path(args.out))
    write_json(args.metrics, summary)
    write_json(Path(args.plots) / "vae.json", [r for r in log if r["stage"] == "vae"])
    write_json(Path(args.plots) / "unet.json", [r for r in log if r["stage"] == "unet"])
    print(summary)


def cmd_judge(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.io import write_json
    from eraselab.models.judge import train_judge

    params = _params(args)
    set_threads(params.judge.threads)
    metrics = train_judge(params, Path(args.world), Path(args.out))
    write_json(args.metrics, metrics)
    print(metrics)


def cmd_clip(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.io import write_json
    from eraselab.models.clip import train_clip

    params = _params(args)
    set_threads(params.clip.threads)
    metrics = train_clip(params, Path(args.world), Path(args.out))
    write_json(args.metrics, metrics)
    print(metrics)


def cmd_prompts(args) -> None:
    from eraselab.prompts import evaluation_prompts, write_prompts
    from eraselab.world.dataset import WorldSpec

    params = _params(args)
    spec = WorldSpec.from_params(params.world)
    out = Path(args.out)
    write_prompts(out / "heldout.jsonl", evaluation_prompts(spec, params.prompts.per_combination, params.prompts.seed))


def cmd_generate(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.generate import SamplingConfig, generate_prompts, write_images
    from eraselab.models import load_pipeline
    from eraselab.prompts import read_prompts

    params = _params(args)
    g = params.generate
    set_threads(g.threads)
    records = read_prompts(args.prompts)
    config = SamplingConfig(steps=g.steps, guidance=g.guidance, scheduler=g.scheduler, batch_size=g.batch_size)
    pipe = load_pipeline(args.model, params.model.device, params.model.fp16)
    start = time.perf_counter()
    images = generate_prompts(pipe, [r["prompt"] for r in records], [r["seed"] for r in records], config)
    elapsed = time.perf_counter() - start
    meta = {"model": str(args.model), "steps": g.steps, "guidance": g.guidance, "scheduler": g.scheduler}
    write_images(Path(args.out), images, [{**r, **meta} for r in records])
    print(f"{len(images)} images in {elapsed:.1f} s ({len(images) / elapsed:.1f} img/s)")


def cmd_evaluate(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.evaluation.concept_accuracy import clip_score, concept_accuracy
    from eraselab.generate import read_images
    from eraselab.io import write_json
    from eraselab.models.clip import load_clip
    from eraselab.models.judge import load_judge

    params = _params(args)
    set_threads(params.generate.threads)
    images, records = read_images(Path(args.images))
    metrics = concept_accuracy(load_judge(Path(args.judge)), images, records)
    metrics["clip_score"] = clip_score(load_clip(Path(args.clip)), images, records)
    write_json(args.out, metrics)
    print({k: metrics[k] for k in ("accuracy", "clip_score")})


def cmd_report(args) -> None:
    from eraselab.generate import read_images
    from eraselab.models.judge import load_judge
    from eraselab.report import build_report

    params = _params(args)
    images, records = read_images(Path(args.images))
    summary = build_report(params, Path(args.metrics), Path(args.plots), images, records, load_judge(Path(args.judge)),
                           Path(args.out))
    print(summary)


def cmd_params(args) -> None:
    """Print a complete params file: the defaults overlaid with a profile's overrides."""
    from eraselab.params import dump_params, load_profile

    params = load_profile(args.profile) if args.profile else None
    sys.stdout.write(dump_params(params, Path(args.profile).stem if args.profile else "default"))


def cmd_check(args) -> None:
    _params(args)
    print(f"{args.params}: ok")


COMMANDS = {
    "check": (cmd_check, "validate params.yaml and exit", []),
    "params": (cmd_params, "print complete params (defaults + a profile's overrides), e.g. > params.yaml",
               [("--profile", None)]),
    "world": (cmd_world, "render the toy world's image splits", [("--out", "data/world")]),
    "base-model": (cmd_base_model, "train the toy text-to-image model (diffusers layout)",
                   [("--world", "data/world"), ("--out", "models/base"), ("--metrics", "metrics/base_model_train.json"),
                    ("--plots", "plots/base_model")]),
    "judge": (cmd_judge, "train the concept judge CNN",
              [("--world", "data/world"), ("--out", "models/judge"), ("--metrics", "metrics/judge.json")]),
    "clip": (cmd_clip, "train the tiny open_clip model",
             [("--world", "data/world"), ("--out", "models/clip"), ("--metrics", "metrics/clip.json")]),
    "prompts": (cmd_prompts, "write evaluation prompt sets", [("--out", "data/prompts")]),
    "generate": (cmd_generate, "sample images for a prompt set",
                 [("--model", "models/base"), ("--prompts", "data/prompts/heldout.jsonl"), ("--out", "data/generated/base")]),
    "evaluate": (cmd_evaluate, "judge-score generated images",
                 [("--images", "data/generated/base"), ("--judge", "models/judge"), ("--clip", "models/clip"),
                  ("--out", "metrics/base_model.json")]),
    "report": (cmd_report, "render reports/ (metrics.json, report.md, index.html)",
               [("--metrics", "metrics"), ("--plots", "plots"), ("--images", "data/generated/base"),
                ("--judge", "models/judge"), ("--out", "reports")]),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eraselab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name, (_, help_text, options) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        for flag, default in options:
            p.add_argument(flag, default=default, help=f"(default: {default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eraselab.params import ParamsError

    try:
        COMMANDS[args.command][0](args)
    except ParamsError as err:
        print(f"eraselab {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
