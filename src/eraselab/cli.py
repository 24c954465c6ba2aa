"""One CLI for every stage; dvc.yaml and the Snakefile only name these commands.

Each subcommand validates params.yaml first (errors name the key), pins torch's thread count, then
writes its outputs atomically.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def _params(args):
    """params.yaml, validated, with every external weight and data file it names present (else one error
    listing what to download): the first thing every stage does."""
    from eraselab.params import check_components, load_params
    from eraselab.preflight import check_externals

    params = load_params(args.params)
    check_components(params, args.params)
    check_externals(params, args.params)
    return params


def _model_source(params, local: str) -> str:
    """The pipeline later stages start from: the toy base model built here, or a hub id (sd14)."""
    return params.model.hub_id if params.model.source == "hub" else local


def _concept(folder: str):
    """A concept's prompt folder (written by `eraselab concept-prompts`) -> its `Concept`."""
    import json

    from eraselab.concepts import Concept

    path = Path(folder) / "concept.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run `eraselab concept-prompts` for this concept first")
    return Concept.from_json(json.loads(path.read_text()))


def cmd_world(args) -> None:
    from eraselab.world.dataset import WorldSpec, write_world

    p = _params(args).world
    sizes = {"train": p.n_train, "judge_train": p.n_judge_train, "judge_test": p.n_judge_test}
    write_world(WorldSpec.from_params(p), sizes, Path(args.out))


def cmd_base_model(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.io import record_timing, write_json
    from eraselab.models.base_model import train_base_model

    params = _params(args)
    set_threads(params.base_model.threads)
    summary, log = train_base_model(params, Path(args.world), Path(args.out))
    record_timing(args.out, summary.pop("time_s"))
    write_json(args.metrics, summary)
    write_json(Path(args.plots) / "vae.json", [r for r in log if r["stage"] == "vae"])
    write_json(Path(args.plots) / "unet.json", [r for r in log if r["stage"] == "unet"])
    print(summary)


def _train_scorer(args, section: str, train) -> None:
    """Judge and tiny CLIP: train on the world, save the model, write its held-out metrics."""
    from eraselab._compat import set_threads
    from eraselab.io import write_json

    params = _params(args)
    set_threads(getattr(params, section).threads)
    metrics = train(params, Path(args.world), Path(args.out))
    write_json(args.metrics, metrics)
    print(metrics)


def cmd_judge(args) -> None:
    from eraselab.models.judge import train_judge

    _train_scorer(args, "judge", train_judge)


def cmd_clip(args) -> None:
    from eraselab.models.clip import train_clip

    _train_scorer(args, "clip", train_clip)


def cmd_prompts(args) -> None:
    from eraselab.prompts import evaluation_prompts, write_prompts
    from eraselab.world.dataset import WorldSpec

    params = _params(args)
    spec = WorldSpec.from_params(params.world)
    write_prompts(Path(args.out), evaluation_prompts(spec, params.prompts.per_combination, params.prompts.seed))


def cmd_concept_prompts(args) -> None:
    import json

    from eraselab.io import atomic_dir
    from eraselab.params import real_concept
    from eraselab.prompts import write_prompts
    from eraselab.prompts.world_prompts import CONCEPT_SETS, concept_prompt_set, concept_spec
    from eraselab.world.dataset import WorldSpec

    params = _params(args)
    real = real_concept(params, args.concept)
    if real is not None:  # the real path: I2P / COCO / inline prompt sets, same files as the toy world's
        from eraselab.prompts.real_prompts import write_real_concept

        write_real_concept(real, args.out, key=f"real_concepts.{args.concept}")
        return
    p = params.prompts
    spec = WorldSpec.from_params(params.world)
    with atomic_dir(args.out) as out:
        for which in CONCEPT_SETS:
            records = concept_prompt_set(spec, args.concept, which, p.per_concept, p.seed)
            write_prompts(out / f"{which}.jsonl", records)
            if which == "target_train":
                write_prompts(out / "attack_seeds.jsonl", records[: p.attack_seeds])
        concept = concept_spec(spec, args.concept, p.per_concept, p.seed)
        (out / "concept.json").write_text(json.dumps(concept.to_json(), indent=2))


def cmd_generate(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.generate import SamplingConfig, generate_prompts, record_scales, write_images
    from eraselab.io import record_timing
    from eraselab.models import load_pipeline
    from eraselab.prompts import read_prompts

    params = _params(args)
    g = params.generate
    set_threads(g.threads)
    records = read_prompts(args.prompts)
    config = SamplingConfig(steps=g.steps, guidance=g.guidance, scheduler=g.scheduler, batch_size=g.batch_size)
    pipe = load_pipeline(_model_source(params, args.model), params.model.device, params.model.fp16,
                         params.model.attention_slicing)
    start = time.perf_counter()
    scales = record_scales(records, config)
    images = generate_prompts(pipe, [r["prompt"] for r in records], [r["seed"] for r in records], config, scales=scales)
    elapsed = time.perf_counter() - start
    meta = {"model": str(args.model), "steps": g.steps, "scheduler": g.scheduler}
    write_images(Path(args.out), images, [{**r, **meta, "guidance": s}
                                          for r, s in zip(records, scales or [g.guidance] * len(records))])
    record_timing(args.out, {"generate_s": elapsed, "images_per_s": len(images) / elapsed})
    print(f"{len(images)} images in {elapsed:.1f} s ({len(images) / elapsed:.1f} img/s)")


def _sampling(params):
    from eraselab.generate import SamplingConfig

    g = params.generate
    return SamplingConfig(steps=g.steps, guidance=g.guidance, scheduler=g.scheduler, batch_size=g.batch_size)


def cmd_erase(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.erasure.base import EraseContext, write_artifact_manifest
    from eraselab.io import atomic_dir, record_timing, write_json
    from eraselab.models import load_pipeline
    from eraselab.registry import method

    params = _params(args)
    set_threads(params.grid.threads)
    concept = _concept(args.prompts)
    eraser = method(args.method)()
    method_params = eraser.Params.model_validate(params.erase.get(args.method, {}))
    if getattr(eraser, "needs_image_features", False) and not args.clip:
        raise ValueError(f"{args.method} judges its own generations with image features: pass --clip models/clip")
    context = EraseContext(_scorer(params, args.clip).image_features if args.clip else None)
    # Erasure trains in fp32 whatever model.fp16 says, as the originals do (Adam on fp16 weights underflows);
    # its artifacts load into the fp16 pipeline of the later stages.
    pipe = load_pipeline(_model_source(params, args.model), params.model.device, fp16=False,
                         attention_slicing=params.model.attention_slicing)
    start = time.perf_counter()
    with atomic_dir(args.out) as tmp:
        log = eraser.erase(pipe, concept, method_params, tmp, context)
        curve = log.pop("loss", [])  # the training curve goes to DVC plots, the rest into artifact.json
        timing = log.pop("timing", {})  # wall-clock stays out of the artifact (bit-identical reruns)
        write_artifact_manifest(tmp, args.method, concept, method_params, log)
    write_json(args.plots, curve)
    record_timing(args.out, {"erase_s": time.perf_counter() - start, **timing})
    print(f"{args.method} on {concept.name}: {log}")


def cmd_defended_images(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.erasure.base import load_defended
    from eraselab.generate import record_scales, write_images
    from eraselab.io import atomic_dir
    from eraselab.models import load_pipeline
    from eraselab.prompts import read_prompts
    from eraselab.prompts.world_prompts import CONCEPT_SETS

    params = _params(args)
    set_threads(params.grid.threads)
    config = _sampling(params)
    pipe = load_pipeline(_model_source(params, args.model), params.model.device, params.model.fp16,
                         params.model.attention_slicing)
    defended = load_defended(pipe, Path(args.artifact), config)
    folder = Path(args.prompts)
    sets = {which: read_prompts(folder / f"{which}.jsonl") for which in CONCEPT_SETS}
    seeds = read_prompts(folder / "attack_seeds.jsonl") if (folder / "attack_seeds.jsonl").exists() else []
    rendered = {(r["prompt"], r["seed"]) for r in sets["target_train"]}
    if any((r["prompt"], r["seed"]) not in rendered for r in seeds):
        # a separate seed set (the real path's UnlearnDiffAtk prompts): Pre-ASR needs their unattacked images
        sets["attack_seeds"] = seeds
    with atomic_dir(args.out) as tmp:
        for which, records in sets.items():
            scales = record_scales(records, config)
            images = defended.generate_prompts([r["prompt"] for r in records], [r["seed"] for r in records],
                                               progress=True, scales=scales)
            meta = {"method": defended.method, "steps": config.steps, "scheduler": config.scheduler}
            write_images(tmp / which, images, [{**r, **meta, "guidance": s}
                                               for r, s in zip(records, scales or [config.guidance] * len(records))])


def _scorer(params, clip_dir: str):
    """The declared CLIP (params.evaluation.clip_score); the toy one is read from ``clip_dir`` (a stage dep)."""
    from eraselab.evaluation.clip_score import load_clip_scorer

    spec = params.evaluation.clip_score
    if spec.model == "toy":
        spec = spec.model_copy(update={"pretrained": str(clip_dir)})
        return load_clip_scorer(spec, "cpu")
    return load_clip_scorer(spec, params.model.device)


def _detector(params, concept, judge_dir: str):
    """The concept's detector (params.evaluation.detectors; the toy judge by default)."""
    from eraselab.evaluation.detectors import build_detector
    from eraselab.models.judge import load_judge
    from eraselab.params import detector_choice

    choice = detector_choice(params, concept.name)
    judge = load_judge(Path(judge_dir)) if choice.name == "judge" else None
    return build_detector(choice.name, choice.params, judge=judge, concept=concept)


def _checker(params, concept, judge_dir: str, clip_dir: str):
    """The attacks' success oracle: the concept's detector; CLIP image features for similarity."""
    from eraselab.attacks.base import Checker

    return Checker(present=_detector(params, concept, judge_dir).present,
                   image_features=_scorer(params, clip_dir).image_features)


def cmd_attack(args) -> None:
    import torch
    from safetensors.torch import save_file

    from eraselab._compat import set_threads
    from eraselab.erasure.base import load_defended
    from eraselab.generate import write_images
    from eraselab.io import atomic_dir, record_timing
    from eraselab.models import load_pipeline
    from eraselab.prompts import read_prompts
    from eraselab.registry import attack

    params = _params(args)
    set_threads(params.grid.threads)
    torch.manual_seed(0)
    attacker = attack(args.attack)()
    attack_params = attacker.Params.model_validate(params.attack.get(args.attack, {}))
    concept = _concept(args.prompts)
    source = _model_source(params, args.model)
    model = params.model
    undefended = load_pipeline(source, model.device, model.fp16, model.attention_slicing)
    defended = load_defended(load_pipeline(source, model.device, model.fp16, model.attention_slicing), Path(args.artifact),
                             _sampling(params))
    seeds = read_prompts(Path(args.prompts) / "attack_seeds.jsonl")
    start = time.perf_counter()
    adversarial = attacker.run(defended, undefended, concept, seeds, attack_params,
                               checker=_checker(params, concept, args.judge, args.clip))
    elapsed = time.perf_counter() - start
    # one batched sampling call for all adversarial prompts, hard and soft alike, through the defended path
    cond = torch.cat([adv.conditioning(defended) for adv in adversarial])
    images = defended.generate(cond, [adv.seed for adv in adversarial])
    soft = {f"{i:05d}": adv.token_embeddings.detach().cpu().contiguous()
            for i, adv in enumerate(adversarial) if adv.token_embeddings is not None}
    records = [{"seed_prompt": adv.seed_prompt, "seed": adv.seed, "prompt": adv.prompt, "token_ids": adv.token_ids,
                "token_embeddings": f"{i:05d}" if adv.token_embeddings is not None else None, "log": adv.log}
               for i, adv in enumerate(adversarial)]
    with atomic_dir(args.out) as tmp:
        write_images(tmp / "images", images, records)
        if soft:
            save_file(soft, tmp / "token_embeddings.safetensors")
    record_timing(args.out, {"attack_s": elapsed})


def cmd_evaluate_cell(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.evaluation.cell import evaluate_cell
    from eraselab.io import write_json
    from eraselab.models.judge import load_judge

    params = _params(args)
    set_threads(params.grid.threads)
    concept = _concept(args.prompts)
    metrics = evaluate_cell(concept, Path(args.samples), Path(args.attack), _detector(params, concept, args.judge),
                            load_judge(Path(args.judge)), _scorer(params, args.clip))
    write_json(args.out, metrics)
    print(metrics)


def cmd_quality(args) -> None:
    """What a defence costs on benign prompts: FID/KID of its retain images against the reference method's."""
    from eraselab._compat import set_threads
    from eraselab.evaluation.fid import compute_fid_kid
    from eraselab.io import write_json

    params = _params(args)
    set_threads(params.grid.threads)
    spec = params.evaluation.fid
    features = None
    if spec.feature_extractor == "clip_image":
        scorer = _scorer(params.model_copy(update={"evaluation": params.evaluation.model_copy(
            update={"clip_score": spec.clip})}), args.clip)
        features = scorer.image_features
    result = compute_fid_kid(Path(args.samples) / "retain", Path(args.reference) / "retain", spec, feature_fn=features,
                             reference=f"{params.evaluation.fid_reference}/retain")
    write_json(args.out, result)
    print({k: result[k] for k in ("fid", "kid")})


def cmd_evaluate(args) -> None:
    from eraselab._compat import set_threads
    from eraselab.evaluation.concept_accuracy import clip_score, concept_accuracy
    from eraselab.generate import read_images
    from eraselab.io import write_json
    from eraselab.models.judge import load_judge

    params = _params(args)
    set_threads(params.generate.threads)
    images, records = read_images(Path(args.images))
    metrics = concept_accuracy(load_judge(Path(args.judge)), images, records)
    scorer = _scorer(params, args.clip)
    metrics["clip_score"] = clip_score(scorer, images, records)
    metrics["clip_spec"] = scorer.declaration()
    write_json(args.out, metrics)
    print({k: metrics[k] for k in ("accuracy", "clip_score")})


def cmd_report(args) -> None:
    from eraselab.generate import read_images
    from eraselab.models.judge import load_judge
    from eraselab.report import build_report

    from eraselab.evaluation.detectors import build_detector
    from eraselab.params import detector_choice

    params = _params(args)
    images, records = read_images(Path(args.images))
    # real-path concepts to censor: their own detector decides what is blurred (toy ones: the judge)
    detectors = {c: build_detector(detector_choice(params, c).name, detector_choice(params, c).params)
                 for c in params.report.censor_concepts if c in params.real_concepts}
    summary = build_report(params, Path(args.metrics), Path(args.plots), images, records, load_judge(Path(args.judge)),
                           Path(args.out), Path(args.cells), Path(args.attacks), Path(args.ablations), detectors,
                           Path(args.timings))
    print(summary)


def cmd_ablation(args) -> None:
    """Run an ablation spec's variants as DVC experiments (`--action run`), collect them (`collect`), or both."""
    from eraselab.params import ParamsError
    from eraselab.report import ablation

    actions = ("all", "run", "collect", "dry")
    if args.action not in actions:
        raise ParamsError(f"--action {args.action!r}: valid choices: {', '.join(actions)}")
    if args.action in ("all", "run", "dry"):
        commands = ablation.run(args.spec, dry=args.action == "dry", rerun=args.rerun)
        if args.action == "dry":
            print("\n".join(" ".join(c) for c in commands) or "every variant has an experiment")
            return
    if args.action in ("all", "collect"):
        result = ablation.collect(args.spec)
        print(f"{len(result['rows'])} variants collected into {Path(args.spec).with_suffix('.json')}"
              + (f"; missing: {', '.join(result['missing'])}" if result["missing"] else ""))


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
               [("--profile", "")]),
    "world": (cmd_world, "render the toy world's image splits", [("--out", "data/world")]),
    "base-model": (cmd_base_model, "train the toy text-to-image model (diffusers layout)",
                   [("--world", "data/world"), ("--out", "models/base"), ("--metrics", "metrics/base_model_train.json"),
                    ("--plots", "plots/base_model")]),
    "judge": (cmd_judge, "train the concept judge CNN",
              [("--world", "data/world"), ("--out", "models/judge"), ("--metrics", "metrics/judge.json")]),
    "clip": (cmd_clip, "train the tiny open_clip model",
             [("--world", "data/world"), ("--out", "models/clip"), ("--metrics", "metrics/clip.json")]),
    "prompts": (cmd_prompts, "write the base model's held-out evaluation prompts",
                [("--out", "data/prompts/heldout.jsonl")]),
    "concept-prompts": (cmd_concept_prompts, "write one concept's prompt sets (target_train, target_heldout, retain)",
                        [("--concept", None), ("--out", None)]),
    "generate": (cmd_generate, "sample images for a prompt set",
                 [("--model", "models/base"), ("--prompts", "data/prompts/heldout.jsonl"), ("--out", "data/generated/base")]),
    "erase": (cmd_erase, "erase one concept with one method; writes the method's artifact",
              [("--method", None), ("--prompts", None), ("--model", "models/base"), ("--clip", ""), ("--out", None),
               ("--plots", None)]),
    "defended-images": (cmd_defended_images, "images of a concept's prompt sets through a defended model",
                        [("--artifact", None), ("--prompts", None), ("--model", "models/base"), ("--out", None)]),
    "attack": (cmd_attack, "red-team one defended model on one concept; adversarial prompts and their images",
               [("--attack", None), ("--artifact", None), ("--prompts", None), ("--model", "models/base"),
                ("--judge", "models/judge"), ("--clip", "models/clip"), ("--out", None)]),
    "evaluate-cell": (cmd_evaluate_cell, "metrics of one method x concept x attack cell",
                      [("--prompts", None), ("--samples", None), ("--attack", None), ("--judge", "models/judge"),
                       ("--clip", "models/clip"), ("--out", None)]),
    "quality": (cmd_quality, "FID/KID of a defended model's benign-prompt images against the reference method's",
                [("--samples", None), ("--reference", None), ("--clip", "models/clip"), ("--out", None)]),
    "evaluate": (cmd_evaluate, "judge-score generated images",
                 [("--images", "data/generated/base"), ("--judge", "models/judge"), ("--clip", "models/clip"),
                  ("--out", "metrics/base_model.json")]),
    "report": (cmd_report, "render reports/ (metrics.json, report.md, index.html)",
               [("--metrics", "metrics"), ("--plots", "plots"), ("--images", "data/generated/base"),
                ("--cells", "metrics/cells"), ("--attacks", "data/attacks"), ("--judge", "models/judge"),
                ("--ablations", "ablations"), ("--timings", "logs/stages"), ("--out", "reports")]),
    "ablation": (cmd_ablation, "run an ablation spec's variants as `dvc exp run`s and collect them for the report",
                 [("--spec", None), ("--action", "all"), ("--rerun", False)]),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eraselab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name, (_, help_text, options) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        for flag, default in options:
            if default is None:
                p.add_argument(flag, required=True)
            elif default is False:  # a switch
                p.add_argument(flag, action="store_true")
            else:
                p.add_argument(flag, default=default, help=f"(default: {default})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eraselab.params import ParamsError
    from eraselab.preflight import MissingExternalsError

    start = time.perf_counter()
    try:
        COMMANDS[args.command][0](args)
    except (ParamsError, MissingExternalsError) as err:
        print(f"eraselab {args.command}: {err}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:  # `ablation` drives dvc: say which call failed, and its error
        detail = (err.stderr or "").strip() if isinstance(err.stderr, str) else ""
        print(f"eraselab {args.command}: `{' '.join(map(str, err.cmd))}` failed (exit {err.returncode})"
              + (f": {detail}" if detail else ""), file=sys.stderr)
        return err.returncode or 1
    if args.command not in ("check", "params", "ablation"):
        from eraselab.io import record_stage

        record_stage(args.command, getattr(args, "out", None), time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
