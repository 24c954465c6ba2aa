"""Guidance fidelity: SLD's four presets and the negative prompt against the undefended model, over CFG scales.

On SD v1.4 both inference-time defences reduce the concept measurably; this measures whether the toy world
reproduces that, and why not where it does not. For each guidance scale, concept and defence it draws the
concept's training phrasings (the target rate, judge-scored) and its retain prompts (prompt following: the
judge's accuracy on the other concepts), and for SLD records, after its warm-up, on every sampling step:

- ``hit``: the share of latent elements where SLD's mask applies the safety term
  (``eps_c - eps_s < sld_threshold``, diffusers' rule);
- ``rel``: ‖safety term‖ / ‖eps_c - eps_u‖ (how much of the CFG direction SLD removes, before the scale);
- ``cos``: cos(eps_c - eps_u, eps_s - eps_u): how much the prompt's guidance direction *is* the concept's.

Run in a checkout that has run the grid (models/base, the judge, data/concepts/<concept>):
    python benchmarks/guidance.py --threads 2 --json logs/benchmarks/guidance.json --md docs/guidance_table.md

Nothing here is tuned on the grid's evaluation: the prompts are the concepts' training phrasings and retain
prompts, and the defences run with their presets.
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

DEFENCES = [("none", "none", {}), ("negative_prompt", "negative_prompt", {}),
            *((f"sld_{p}", "sld", {"preset": p}) for p in ("weak", "medium", "strong", "max"))]


class Probe:
    """Wraps a defence's guidance rule and records SLD's mask and term sizes per step after warm-up."""

    def __init__(self, guidance, settings: dict | None):
        self.inner, self.settings, self.rows = guidance, settings, []

    def extra_contexts(self):
        return self.inner.extra_contexts()

    def combine(self, eps_u, eps_c, extras, scale, progress, state):
        out = self.inner.combine(eps_u, eps_c, extras, scale, progress, state)
        s = self.settings
        if s and extras and progress * 50 >= s["sld_warmup_steps"]:
            cfg = (eps_c - eps_u).flatten(1)
            concept = (extras[0] - eps_u).flatten(1)
            hit = ((eps_c - extras[0]) < s["sld_threshold"]).float().mean().item()
            scale_t = scale if isinstance(scale, float) else scale.flatten(1)
            removed = (eps_u.flatten(1) + scale_t * cfg - out.flatten(1)) / scale_t  # SLD's term, before the scale
            self.rows.append({"hit": hit, "rel": (removed.norm(dim=1) / cfg.norm(dim=1)).mean().item(),
                              "cos": torch.nn.functional.cosine_similarity(cfg, concept, dim=1).mean().item()})
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--guidance", type=float, nargs="+", default=[4.0, 7.5, 10.0])
    ap.add_argument("--concepts", nargs="*", help="default: the grid's")
    ap.add_argument("--images", type=int, default=60, help="prompts per set (training phrasings, retain)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)

    from eraselab import registry
    from eraselab._compat import set_threads
    from eraselab.evaluation.concept_accuracy import concept_accuracy
    from eraselab.params import load_params
    from eraselab.prompts.world_prompts import read_prompts
    from eraselab.stages import paths
    from eraselab.stages.common import load_concept, pipeline, sampling
    from eraselab.stages.scoring import detector, judge

    set_threads(args.threads)
    params = load_params(args.params)
    pipe = pipeline(params)
    rows = []
    for c in args.concepts or params.grid.concepts:
        concept = load_concept(c)
        folder = Path(paths.concept(c))
        sets = {k: read_prompts(folder / f"{k}.jsonl")[: args.images] for k in ("target_train", "retain")}
        check, scorer = detector(params, concept), judge(params, c)
        for g in args.guidance:
            config = replace(sampling(params), guidance=g)
            for label, name, overrides in DEFENCES:
                eraser = registry.method(name)()
                mp = eraser.Params.model_validate({**(params.erase.get(name) or {}), **overrides})
                with tempfile.TemporaryDirectory() as tmp:
                    eraser.erase(pipe, concept, mp, Path(tmp))
                    defended = eraser.load(pipe, Path(tmp), config)
                probe = Probe(defended.guidance, mp.settings() if name == "sld" else None)
                defended.guidance = probe
                start = time.perf_counter()
                out = {}
                for which, records in sets.items():
                    out[which] = defended.generate_prompts([r["prompt"] for r in records],
                                                           [r["seed"] for r in records], progress=False)
                rate = float(check.present(out["target_train"]).mean())
                acc = concept_accuracy(scorer, out["retain"], sets["retain"])["accuracy"]
                row = {"concept": c, "guidance": g, "defence": label, "target_rate": rate,
                       "n": len(sets["target_train"]), "prompt_following": float(np.mean(list(acc.values()))),
                       "seconds": round(time.perf_counter() - start, 1)}
                if probe.rows:
                    row.update({k: float(np.mean([r[k] for r in probe.rows])) for k in ("hit", "rel", "cos")})
                rows.append(row)
                print(json.dumps(row), flush=True)
    for row in rows:  # the undefended rate at the same scale, for the relative column
        ref = next(r for r in rows if r["concept"] == row["concept"] and r["guidance"] == row["guidance"]
                   and r["defence"] == "none")
        row["relative"] = row["target_rate"] / ref["target_rate"] if ref["target_rate"] else None
    if args.json:
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
    lines = ["| concept | guidance | defence | target rate (95 % CI) | of undefended | prompt following | "
             "SLD mask hit | SLD ‖term‖/‖CFG‖ | cos(CFG, concept) |", "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['concept']} | {r['guidance']:g} | {r['defence']} | "
                     f"{fmt_interval(r['target_rate'], rate_interval(r['target_rate'], r['n']))} | "
                     f"{f(r.get('relative'))} | {f(r['prompt_following'])} | {f(r.get('hit'))} | {f(r.get('rel'))} | "
                     f"{f(r.get('cos'))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
