"""Guidance fidelity: SLD's four presets and the negative prompt against the undefended model, over CFG scales.

On SD v1.4 both inference-time defences reduce the concept measurably; this measures whether the toy world
reproduces that, and why not where it does not. For each guidance scale, concept and defence it draws the
concept's training phrasings (which name the safety concept's own word) and held-out phrasings (synonyms), each
judge-scored for the target rate, and its retain prompts (prompt following: the judge's accuracy on the other
concepts' attributes), all drawn fresh from a benchmark-only random stream, and for SLD records, after its warm-up, on every sampling step:

- ``hit``: the share of latent elements where SLD's mask applies the safety term
  (``eps_c - eps_s < sld_threshold``, diffusers' rule);
- ``rel``: ‖safety term‖ / ‖eps_c - eps_u‖ (how much of the CFG direction SLD removes, before the scale);
- ``cos``: cos(eps_c - eps_u, eps_s - eps_u): how much the prompt's guidance direction *is* the concept's;

and for every defence, on every step, with eps_0 the empty prompt's and eps_k the concept words' predictions:

- ``along``: the coefficient of the final prediction's offset (guided eps - eps_0) on eps_k - eps_0, i.e.
  how hard the sampler is pushed toward the concept (plain CFG: about g times the prompt's share);
- ``cond_along``: the same for the conditional prediction alone (what guidance scale 1 would use);
- ``along_early``: ``along`` over the first quarter of the steps, and ``along_by_step`` per step (JSON only).

Run in a checkout that has built the base model, the judge and the concepts' prompts (`dvc repro base_model
judge concept_prompts.<concept>`):
    python benchmarks/guidance.py --threads 2 --images 50 --json docs/guidance.json --md docs/guidance_table.md
(docs/guidance.md reads the result.)

Nothing here is tuned on the grid's evaluation: the prompts are drawn from their own stream, and the defences
run with their presets.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from eraselab.erasure.sld import REFERENCE_STEPS

STREAM = "guidance"  # concept_prompt_set's stream: not the grid's evaluation draw
SETS = ("target_train", "target_heldout", "retain")
EARLY = 0.25  # the first quarter of the trajectory, where the toy world's colour and shape are laid down
DEFENCES = [("none", "none", {}), ("negative_prompt", "negative_prompt", {}),
            *((f"sld_{p}", "sld", {"preset": p}) for p in ("weak", "medium", "strong", "max")),
            # the medium preset without its warm-up: does SLD fail here because the concept is laid down first?
            ("sld_medium_no_warmup", "sld", {"preset": "medium", "overrides": {"sld_warmup_steps": 0}})]


class Probe:
    """Wraps a defence's guidance rule; records SLD's mask and term sizes per step after its warm-up and, on
    every step, how far the final noise prediction moves along the concept's own direction.

    ``references``: the empty prompt's and the concept words' embeddings, run in the same batched UNet call
    as two extra conditionings (eps_0, eps_k); the wrapped rule never sees them.
    """

    def __init__(self, guidance, settings: dict | None, references: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.inner, self.settings, self.references, self.rows, self.along = guidance, settings, references, [], []

    def extra_contexts(self):
        return [*self.inner.extra_contexts(), *(self.references or ())]

    def combine(self, eps_u, eps_c, extras, scale, progress, state):
        if self.references:
            extras, (eps_0, eps_k) = extras[:-2], extras[-2:]
        out = self.inner.combine(eps_u, eps_c, extras, scale, progress, state)
        if self.references:
            self.along.append({"progress": progress, "along": along(out - eps_0, eps_k - eps_0),
                               "cond_along": along(eps_c - eps_0, eps_k - eps_0)})
        s = self.settings
        if s and extras and progress * REFERENCE_STEPS >= s["sld_warmup_steps"]:
            cfg = (eps_c - eps_u).flatten(1)
            concept = (extras[0] - eps_u).flatten(1)
            hit = ((eps_c - extras[0]) < s["sld_threshold"]).float().mean().item()
            scale_t = scale if isinstance(scale, float) else scale.flatten(1)
            removed = (eps_u.flatten(1) + scale_t * cfg - out.flatten(1)) / scale_t  # SLD's term, before the scale
            self.rows.append({"hit": hit, "rel": (removed.norm(dim=1) / cfg.norm(dim=1)).mean().item(),
                              "cos": torch.nn.functional.cosine_similarity(cfg, concept, dim=1).mean().item()})
        return out


def along(d: torch.Tensor, direction: torch.Tensor) -> float:
    """Mean over the batch of d's coefficient on ``direction`` (1: as far as the concept words' own
    prediction, eps_k - eps_0; plain CFG at scale g on a prompt that is all concept: about g)."""
    d, direction = d.flatten(1), direction.flatten(1)
    return ((d * direction).sum(1) / (direction * direction).sum(1)).mean().item()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 4.0, 7.5, 10.0])
    ap.add_argument("--concepts", nargs="*", help="default: the grid's")
    ap.add_argument("--images", type=int, default=60, help="prompts per set (training phrasings, held-out phrasings, retain)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--defences", nargs="*", help=f"default: all of {', '.join(d[0] for d in DEFENCES)}")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--from-json", type=Path, nargs="+", help="write the table from earlier runs' JSON; run nothing")
    args = ap.parse_args(argv)
    if args.from_json:
        rows = [row for path in args.from_json for row in json.loads(path.read_text())]
        return write(rows, args)
    unknown = sorted(set(args.defences or ()) - {d[0] for d in DEFENCES})
    if unknown:
        ap.error(f"--defences: unknown {unknown}; valid choices: {', '.join(d[0] for d in DEFENCES)}")
    defences = [d for d in DEFENCES if not args.defences or d[0] in args.defences]

    from eraselab import registry
    from eraselab._compat import set_threads
    from eraselab.evaluation.concept_accuracy import concept_accuracy
    from eraselab.generate import encode_prompts, generate_prompts
    from eraselab.params import load_params
    from eraselab.prompts.world_prompts import concept_prompt_set
    from eraselab.world.dataset import WorldSpec
    from eraselab.stages.common import load_concept, pipeline, sampling
    from eraselab.stages.scoring import detector, judge

    set_threads(args.threads)
    params = load_params(args.params)
    pipe = pipeline(params)
    rows = []
    spec = WorldSpec.from_params(params.world)
    for c in args.concepts or params.grid.concepts:
        concept = load_concept(c)
        references = (encode_prompts(pipe, [""]), encode_prompts(pipe, [concept.text]))
        # fresh prompts from the benchmark's own random stream: nothing decided here is fitted to the grid's
        # evaluation sets (target_train phrasings name the safety concept's own word, target_heldout a synonym)
        sets = {k: concept_prompt_set(spec, c, k, args.images, params.prompts.seed, stream=STREAM) for k in SETS}
        check, scorer = detector(params, concept), judge(params, c)
        # the concept's words alone, unguided (scale 1): what a negative prompt of those words keeps at strength 1
        seeds = [r["seed"] for r in sets["target_train"]]
        alone = generate_prompts(pipe, [concept.text] * len(seeds), seeds, replace(sampling(params), guidance=1.0),
                                 progress=False)
        words_alone = float(check.present(alone).mean())
        for g in args.guidance:
            config = replace(sampling(params), guidance=g)
            for label, name, overrides in defences:
                eraser = registry.method(name)()
                mp = eraser.Params.model_validate({**(params.erase.get(name) or {}), **overrides})
                with tempfile.TemporaryDirectory() as tmp:
                    eraser.erase(pipe, concept, mp, Path(tmp))
                    defended = eraser.load(pipe, Path(tmp), config)
                probe = Probe(defended.guidance, mp.settings() if name == "sld" else None, references)
                defended.guidance = probe
                start = time.perf_counter()
                out = {}
                for which, records in sets.items():
                    out[which] = defended.generate_prompts([r["prompt"] for r in records],
                                                           [r["seed"] for r in records], progress=False)
                acc = concept_accuracy(scorer, out["retain"], sets["retain"])["accuracy"]
                row = {"concept": c, "guidance": g, "defence": label, "words_alone_g1": words_alone,
                       "target_rate": float(check.present(out["target_train"]).mean()),
                       "heldout_rate": float(check.present(out["target_heldout"]).mean()),
                       "n": len(sets["target_train"]), "prompt_following": float(np.mean(list(acc.values()))),
                       "seconds": round(time.perf_counter() - start, 1)}
                for rows_, keys in ((probe.rows, ("hit", "rel", "cos")), (probe.along, ("along", "cond_along"))):
                    if rows_:
                        row.update({k: float(np.mean([r[k] for r in rows_])) for k in keys})
                early = [r["along"] for r in probe.along if r["progress"] < EARLY]
                row["along_early"] = float(np.mean(early)) if early else None
                steps = sorted({r["progress"] for r in probe.along})  # per step, over the batches
                row["along_by_step"] = [float(np.mean([r["along"] for r in probe.along if r["progress"] == t]))
                                        for t in steps]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return write(rows, args)


def write(rows: list[dict], args) -> int:
    concepts = list(dict.fromkeys(r["concept"] for r in rows))
    order = [d[0] for d in DEFENCES]
    rows = sorted(rows, key=lambda r: (concepts.index(r["concept"]), r["guidance"], order.index(r["defence"])))
    for row in rows:  # the undefended rates at the same scale, for the relative columns
        ref = next((r for r in rows if r["concept"] == row["concept"] and r["guidance"] == row["guidance"]
                    and r["defence"] == "none"), None)
        for k in ("target_rate", "heldout_rate"):
            row[f"relative_{k}"] = row[k] / ref[k] if ref and ref[k] else None
    if args.json and not args.from_json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    table = markdown(rows)
    if args.md:
        args.md.write_text(table + "\n")
    print(table)
    return 0


def markdown(rows: list[dict]) -> str:
    from eraselab.evaluation.intervals import fmt_interval, rate_interval

    f = lambda v, d=2: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = ["| concept | guidance | defence | target rate, concept's word (95 % CI) | of undefended | "
             "target rate, synonyms (95 % CI) | of undefended | prompt following | SLD mask hit | "
             "SLD ‖term‖/‖CFG‖ | cos(CFG, concept) | push along concept: all steps (first quarter; conditional alone) |",
             "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['concept']} | {r['guidance']:g} | {r['defence']} | "
                     f"{fmt_interval(r['target_rate'], rate_interval(r['target_rate'], r['n']))} | "
                     f"{f(r.get('relative_target_rate'))} | "
                     f"{fmt_interval(r['heldout_rate'], rate_interval(r['heldout_rate'], r['n']))} | "
                     f"{f(r.get('relative_heldout_rate'))} | {f(r['prompt_following'])} | {f(r.get('hit'))} | "
                     f"{f(r.get('rel'))} | {f(r.get('cos'))} | {f(r.get('along'))} ({f(r.get('along_early'))}; {f(r.get('cond_along'))}) |")
    alone = {r["concept"]: (r.get("words_alone_g1"), r["n"]) for r in rows if r.get("words_alone_g1") is not None}
    if alone:
        lines += ["", "| concept | target rate of the concept's words alone, guidance 1 (95 % CI) |", "|---|---|"]
        lines += [f"| {c} | {fmt_interval(v, rate_interval(v, n))} |" for c, (v, n) in alone.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
