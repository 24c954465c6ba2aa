"""Projected GPU cost of a profile's grid on SD v1.4 (default profiles/sd14.yaml), from counted FLOPs.

FLOPs of one call of each SD v1.4 network (UNet at 64 x 64 latents, text encoder, VAE decoder and encoder)
are counted with torch.utils.flop_counter.FlopCounterMode on modules of SD v1.4's published shape built on
the `meta` device (no weights, no memory; eraselab.models.sd_shapes). Backward passes are counted too, with
exactly the tensors each stage differentiates (attn2 weights for ESD-x, a LoRA for Dark Miner, only the
conditioning for attacks), not assumed 2x. Then every stage of the grid is written out as calls, from the
profile's params and the code's loops, and priced at a stated sustained throughput.

Usage (repo root): python benchmarks/sd14_cost.py [--profile profiles/sd14.yaml] [--peak-tflops 989]
                   [--utilisation 0.4] [--measured logs/benchmarks/sd14_cuda_smoke.json] [--json PATH]
Prints Markdown tables and every assumption. Budgets are upper bounds: each attack spends its full budget
on every seed prompt (no early success, no prompt skipped because its image already shows the concept)
and Dark Miner runs all its rounds, each verification passing.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import eraselab._compat  # noqa: F401  (before torchvision users)
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from eraselab import registry
from eraselab.generate import SCHEDULER_OVERRIDES, SCHEDULERS
from eraselab.io import write_json
from eraselab.models import sd_shapes
from eraselab.models.text_encoding import encode_token_embeddings
from eraselab.params import ParamsError, load_profile, real_concept

LATENT = 64  # SD v1.4 at 512 px
# H100 SXM dense BF16/FP16 tensor-core peak (the 1979 TFLOP/s on the datasheet assumes 2:4 sparsity)
H100_DENSE_TFLOPS = 989.0
# Published sizes of prompt files that are not on this machine (a local file, when present, is counted).
KNOWN_ROWS = {
    ("i2p", 50.0): 95,  # I2P rows with nudity_percentage > 50 (P4D / Ring-A-Bell's nudity seeds)
    ("unlearndiffatk_nudity", None): 142,  # UnlearnDiffAtk's nudity seed prompts
    ("unlearndiffatk_i2p", None): 756,  # UnlearnDiffAtk's violence.csv (I2P's violence category); presets set a limit
}

# --- what one call of each network costs ------------------------------------------------------------
CALLS = {  # name -> what it is (per sample: batch 1, one denoising step / one prompt / one image)
    "unet": "UNet forward, no grad",
    "unet_grad_cond": "UNet forward + backward to the conditioning only (attacks, Dark Miner's mining)",
    "unet_grad_cond_weights": "the same with every UNet weight requiring grad (attacks on an unfrozen pipeline)",
    "unet_grad_esd_x": "UNet forward + backward, attn2 weights trained (ESD-x)",
    "unet_grad_esd_u": "UNet forward + backward, all but attn2/time embedding/output head trained (ESD-u)",
    "unet_grad_lora": "UNet forward + backward, LoRA on attn2 trained (Dark Miner's circumventing)",
    "text": "text encoder forward (77 tokens)",
    "text_grad": "text encoder forward + backward to the token embeddings (attacks)",
    "text_grad_weights": "the same with every text-encoder weight requiring grad (attacks on an unfrozen pipeline)",
    "vae_decode": "VAE decoder, one latent -> one 512 px image",
    "vae_encode": "VAE encoder, one 512 px image -> one latent (attacks' and Dark Miner's targets)",
}


def _count(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _unet_grad(unet, x, t, c, trainable) -> float:
    """FLOPs of forward + backward with only ``trainable`` (a name predicate) and maybe ``c`` needing grad."""
    unet.requires_grad_(False)
    for name, p in unet.named_parameters():
        p.requires_grad_(trainable(name))
    return _count(lambda: unet(x, t, encoder_hidden_states=c).sample.sum().backward())


def count_call_flops(cfg_batch: int = 2, lora_rank: int = 8) -> dict[str, float]:
    """FLOPs per sample of every call in `CALLS`, counted at ``cfg_batch`` (CFG's pair) and divided by it."""
    from peft import LoraConfig

    from eraselab.erasure.esd import _FROZEN_IN_ESD_U

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(sd_shapes.unet_config(LATENT))
        vae = AutoencoderKL.from_config({**sd_shapes.vae_config(LATENT * sd_shapes.VAE_DOWNSAMPLING),
                                         "scaling_factor": sd_shapes.VAE_SCALING_FACTOR})
        text = CLIPTextModel(CLIPTextConfig(**sd_shapes.text_encoder_config()))
        x = torch.randn(cfg_batch, 4, LATENT, LATENT)
        t = torch.tensor(500)
        c = torch.randn(cfg_batch, 77, 768)
        ids = torch.zeros(cfg_batch, 77, dtype=torch.long)
        embeds = torch.randn(cfg_batch, 77, 768, requires_grad=True)
        pixels = torch.randn(cfg_batch, 3, LATENT * 8, LATENT * 8)
    for module in (unet, vae, text):
        module.requires_grad_(False)
    flops = {}
    with torch.no_grad():
        flops["unet"] = _count(lambda: unet(x, t, encoder_hidden_states=c))
        flops["text"] = _count(lambda: text(ids))
        flops["vae_decode"] = _count(lambda: vae.decode(x))
        flops["vae_encode"] = _count(lambda: vae.encode(pixels))
    c_grad = c.clone().requires_grad_(True)
    flops["unet_grad_cond"] = _unet_grad(unet, x, t, c_grad, lambda n: False)
    flops["unet_grad_cond_weights"] = _unet_grad(unet, x, t, c_grad, lambda n: True)
    flops["unet_grad_esd_x"] = _unet_grad(unet, x, t, c, lambda n: ".attn2." in n)
    flops["unet_grad_esd_u"] = _unet_grad(unet, x, t, c,
                                          lambda n: ".attn2." not in n and not n.startswith(_FROZEN_IN_ESD_U))
    flops["text_grad"] = _count(lambda: encode_token_embeddings(text, embeds).sum().backward())
    text.requires_grad_(True)
    flops["text_grad_weights"] = _count(lambda: encode_token_embeddings(text, embeds).sum().backward())
    with torch.device("meta"):
        unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank,
                                    target_modules=r".*\.attn2\.(to_q|to_k|to_v|to_out\.0)"))
    flops["unet_grad_lora"] = _unet_grad(unet, x, t, c, lambda n: "lora_" in n)
    return {k: v / cfg_batch for k, v in flops.items()}


# --- the grid as calls ---------------------------------------------------------------------------------
def sampler_calls(scheduler: str, steps: int) -> int:
    """UNet evaluations one sampling run makes (PNDM without PRK steps makes steps + 1)."""
    sched = SCHEDULERS[scheduler].from_config(sd_shapes.SCHEDULER, **SCHEDULER_OVERRIDES.get(scheduler, {}))
    sched.set_timesteps(steps)
    return len(sched.timesteps)


def images(n: float, unet_calls: int, contexts: int = 2) -> Counter:
    """``n`` generated images: ``contexts`` UNet samples per step (CFG pair; SLD adds its safety concept)."""
    return Counter({"unet": n * unet_calls * contexts, "text": n, "vae_decode": n})


# Samples in one `Defended.noise` call (what attacks differentiate): a weight edit is the plain UNet; an
# inference-time defence evaluates the empty prompt, its unconditional branch, the conditioning and extras.
NOISE_CONTEXTS = {"negative_prompt": 3, "sld": 4}
GENERATION_CONTEXTS = {"sld": 3}


@dataclass
class ConceptSizes:
    target_train: int
    target_heldout: int
    retain: int
    attack_seeds: int
    erase_prompts: int
    anchor_prompts: int
    retain_fit: int


def _rows(prompt_set, key: str, assumptions: list[str]) -> int:
    from eraselab.prompts.real_prompts import InlinePrompts, read_prompt_set

    if isinstance(prompt_set, InlinePrompts) or (prompt_set.path and Path(prompt_set.path).exists()):
        return len(read_prompt_set(prompt_set, key))
    if prompt_set.limit is not None:
        assumptions.append(f"{key}: the {prompt_set.format} file is not here; counted as its limit, "
                           f"{prompt_set.limit} rows")
        return prompt_set.limit
    known = KNOWN_ROWS.get((prompt_set.format, prompt_set.min_nudity_percentage))
    if known is None:
        raise SystemExit(f"{key}: cannot count the {prompt_set.format} prompt set without its file; put the file "
                         f"at its `path` or give the set a `limit`")
    assumptions.append(f"{key}: the {prompt_set.format} file is not here; counted as its published size, {known} rows")
    return known


def concept_sizes(params, name: str, assumptions: list[str]) -> ConceptSizes:
    real = real_concept(params, name)
    if real is None:  # a toy-world concept: per_concept prompts per set, attack_seeds of target_train
        from eraselab.prompts.world_prompts import concept_spec
        from eraselab.world.dataset import WorldSpec

        p = params.prompts
        concept = concept_spec(WorldSpec.from_params(params.world), name, p.per_concept, p.seed)
        return ConceptSizes(p.per_concept, p.per_concept, p.per_concept, min(p.attack_seeds, p.per_concept),
                            len(concept.erase_prompts), len(concept.anchor_prompts), len(concept.retain_prompts))
    key = f"real_concepts.{name}"
    count = {which: _rows(getattr(real, which), f"{key}.{which}", assumptions)
             for which in ("target_train", "target_heldout", "retain", "retain_fit")}
    seeds = count["target_train"] if real.attack_seeds is None else _rows(real.attack_seeds, f"{key}.attack_seeds",
                                                                           assumptions)
    return ConceptSizes(count["target_train"], count["target_heldout"], count["retain"], seeds,
                        len(real.erase_prompts), len(real.anchor_prompts()), count["retain_fit"])


def erase_calls(method: str, p, size: ConceptSizes) -> Counter:
    """One erase stage's calls, from the method's loop (erasure/<method>.py)."""
    if method in ("esd_x", "esd_u"):
        b = p.batch_size
        mean_stop = (p.trajectory_steps - 1) / 2  # x_t after a uniform number of the current model's DDIM CFG steps
        per_step = Counter({"unet": 2 * b * mean_stop + 2 * b,  # that trajectory + the frozen teacher's pair
                            f"unet_grad_{method}": b, "text": b})
        return Counter({k: v * p.steps for k, v in per_step.items()})
    if method == "advunlearn":  # ESD's step on the adversarial prompt, the inner attack's steps, the retain loss
        b, mean_stop = p.batch_size, (p.trajectory_steps - 1) / 2
        attacked = max(p.iterations - p.warmup, 0)
        grad = "unet_grad_esd_x" if p.module == "unet_xattn" else "unet_grad_cond"
        total = Counter({"unet": (2 * b * mean_stop + 2 * b + p.retain_batch) * p.iterations,
                         grad: (b + p.retain_batch) * p.iterations + b * p.attack_steps * attacked,
                         "text_grad": (b + p.retain_batch) * p.iterations + b * p.attack_steps * attacked})
        return total
    if method == "darkminer":
        calls = sampler_calls(p.sample_scheduler, p.sample_steps)
        pool = images(p.pool_size * (2 if p.verify_reference == "paired" else 1), calls)
        pool["vae_encode"] += p.pool_size
        total = Counter(pool)
        for r in range(p.rounds):  # upper bound: every round runs and passes its verification
            total["unet_grad_cond"] += p.mine_steps * p.batch_size
            total.update(images(2 * p.verify_samples, calls))
            contexts = 1 + (1 if p.replay and r > 0 else 0) + sum(
                w > 0 for w in (p.anchor_weight, p.empty_weight, p.negative_weight, p.retain_weight))
            total["unet"] += p.circumvent_steps * contexts * p.batch_size  # the adapter-off teacher
            total["unet_grad_lora"] += p.circumvent_steps * contexts * p.batch_size
        return total
    if method in ("uce", "steerdiff"):  # closed form / small MLP on text-encoder outputs
        return Counter({"text": size.erase_prompts + size.anchor_prompts + size.retain_fit})
    if method == "sld":
        return Counter({"text": 1})
    return Counter()  # none, negative_prompt: a config file


def attack_calls(attack: str, p, method: str, concept: str, size: ConceptSizes, gen_calls: int,
                 weights_grad: bool = True) -> list[tuple[tuple | None, Counter]]:
    """One attack stage's calls (attacks/<attack>.py), then the stage's generation of every adversarial prompt.

    Parts that another stage computes identically carry a key: the same key means the same tensors (the
    undefended model's images, a defended path's images of the seed prompts, Ring-A-Bell's search, which
    never sees the defence), so a cache shared between stages would compute them once. ``weights_grad``: the
    backward also computes every weight's gradient (a pipeline whose weights require grad)."""
    unet_grad, text_grad = (("unet_grad_cond_weights", "text_grad_weights") if weights_grad
                            else ("unet_grad_cond", "text_grad"))
    n, ctx = size.attack_seeds, GENERATION_CONTEXTS.get(method, 2)
    noise = NOISE_CONTEXTS.get(method, 1)
    seed_images = ("defended seed-prompt images", method, concept)
    if attack == "no_attack":  # its adversarial prompts are the seed prompts
        return [(seed_images, images(n, gen_calls, ctx))]
    parts = []
    search = Counter()
    if attack in ("unlearndiffatk", "p4d_n", "p4d_k"):
        parts.append((seed_images, images(n, gen_calls, ctx)))  # TokenSearch.prepare: does the concept show already?
        target = images(n, gen_calls)  # the undefended model's image per seed prompt, and its latent
        target["vae_encode"] += n
        parts.append((("undefended seed-prompt images", concept), target))
        if attack == "unlearndiffatk":
            steps, queries = p.timesteps * p.steps_per_timestep, p.timesteps
        else:
            steps, queries = p.iterations, math.ceil(p.iterations / p.eval_every)
            search["unet"] += n * steps  # the undefended model's noise prediction as the goal
        search[unet_grad] += n * steps * noise
        search[text_grad] += n * steps
        search.update(images(n * queries, gen_calls, ctx))
        parts.append((None, search))
    elif attack == "cce":
        concept_images = images(p.images, gen_calls)  # the undefended model's concept images, and their latents
        concept_images["vae_encode"] += p.images
        parts.append((("undefended concept images", concept, p.images, p.seed), concept_images))
        search[unet_grad] += p.steps * p.batch_size * noise
        search[text_grad] += p.steps * p.batch_size
        parts.append((None, search))
    elif attack == "ring_a_bell":  # text encoder only, the undefended one: the same search for every method
        search["text"] += 2 * min(p.pairs, size.erase_prompts) + n * (1 + p.population * (p.generations + 1))
        parts.append((("ring_a_bell search", concept, p), search))
    elif attack == "sneakyprompt":  # black box: at most `queries` defended images per seed prompt, CLIP-scored
        parts.append((seed_images, images(n, gen_calls, ctx)))
        parts.append((("undefended seed-prompt images", concept), images(n, gen_calls)))
        search.update(images(n * p.queries, gen_calls, ctx))
        parts.append((None, search))
    elif attack == "mma_diffusion":  # text encoder only, the undefended one: one search per concept
        search["text"] += n * (1 + p.steps * p.candidates)  # each seed's target, then the candidates scored
        search["text_grad"] += n * p.steps  # the gradient to the one-hot tokens, once per step
        parts.append((("mma_diffusion search", concept, p), search))
    parts.append((None, images(n, gen_calls, ctx)))  # the attack stage: the adversarial prompts' defended images
    return parts


def grid_calls(params, assumptions: list[str], weights_grad: bool = True) -> list[dict]:
    """One row per stage of the grid: its kind, name and calls, in parts (key, calls); see `attack_calls`."""
    g = params.generate
    gen_calls = sampler_calls(g.scheduler, g.steps)
    from eraselab.prompts.world_prompts import evaluation_prompts
    from eraselab.world.dataset import WorldSpec

    # the `generate` stage samples the world's held-out prompts, whichever model the profile uses
    heldout = len(evaluation_prompts(WorldSpec.from_params(params.world), params.prompts.per_combination,
                                     params.prompts.seed))
    rows = [{"kind": "generate", "stage": "generate", "parts": [(None, images(heldout, gen_calls))]}]
    if params.model.source != "hub":
        assumptions.append("model.source is base_model: the toy base model's training is not projected")
    for concept in params.grid.concepts:
        size = concept_sizes(params, concept, assumptions)
        for method in params.grid.methods:
            mp = registry.method(method)().Params.model_validate(params.erase.get(method, {}))
            rows.append({"kind": f"erase {method}", "stage": f"erase.{method}.{concept}",
                         "parts": [(None, erase_calls(method, mp, size))]})
            shown = size.target_train + size.target_heldout + size.retain
            rows.append({"kind": "defended", "stage": f"defended.{method}.{concept}",
                         "parts": [(None, images(shown, gen_calls, GENERATION_CONTEXTS.get(method, 2)))]})
            for attack in params.grid.attacks:
                ap = registry.attack(attack)().Params.model_validate(params.attack.get(attack, {}))
                rows.append({"kind": f"attack {attack}", "stage": f"attack.{method}.{concept}.{attack}",
                             "parts": attack_calls(attack, ap, method, concept, size, gen_calls, weights_grad)})
    return rows


def price(rows: list[dict], flops: dict[str, float]) -> None:
    """Each row's FLOPs as the grid runs now, and with every keyed part computed once across the grid."""
    seen = set()
    for row in rows:
        row["calls"] = sum((calls for _, calls in row["parts"]), Counter())
        row["flops"] = sum(v * flops[k] for k, v in row["calls"].items())
        row["flops_cached"] = 0.0
        for key, calls in row["parts"]:
            if key is None or key not in seen:
                row["flops_cached"] += sum(v * flops[k] for k, v in calls.items())
            if key is not None:
                seen.add(key)


# --- pricing and output -----------------------------------------------------------------------------
def measured_tflops(path: Path, per_sample_unet: float) -> tuple[float, str] | None:
    """Sustained TFLOP/s of the largest fp16 generation batch in a sd14_cuda_smoke.json, if there is one."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    gen = [r for r in data.get("rows", []) if r["stage"].startswith("generate") and r.get("dtype") == "float16"
           and not r.get("slicing") and r.get("s_per_step")]
    if not gen or data.get("meta", {}).get("latent") != LATENT or data["meta"].get("layers") != "SD v1.4 (full)":
        return None
    row = max(gen, key=lambda r: r["batch"])
    tflops = row["batch"] * 2 * per_sample_unet / row["s_per_step"] / 1e12
    return tflops, f"{data['meta'].get('device')}, generation batch {row['batch']}, {row['s_per_step']:.3f} s/step"


SAVINGS = (  # label, the totals' key (see `by_kind`)
    ("attacks differentiate only their prompt: the defended pipeline's weights frozen (where `load_pipeline` "
     "leaves requires_grad on, each backward also computes every weight gradient)", "flops_frozen"),
    ("parts several stages compute identically, computed once: the undefended model's images of the seed prompts "
     "(UnlearnDiffAtk, P4D-N, P4D-K, every method), CCE's concept images, a defended path's seed-prompt images "
     "(no_attack and the white-box pre-check), Ring-A-Bell's search (it never sees the defence)", "flops_cached"),
    ("both", "flops_both"),
)


def loaded_weights_require_grad() -> bool:
    """Whether `load_pipeline` hands attacks a UNet whose weights require grad (checked on a tiny pipeline)."""
    import tempfile

    from diffusers import StableDiffusionPipeline

    from eraselab.models import load_pipeline
    from eraselab.models.components import build_text_encoder, build_unet, build_vae, sampling_scheduler
    from eraselab.models.tokenizer import build_clip_tokenizer
    from eraselab.params import parse_params

    bp = parse_params({"base_model": {"unet": {"block_channels": [8, 16]}, "vae": {"block_channels": [8, 16]}}}).base_model
    pipe = StableDiffusionPipeline(
        vae=build_vae(bp.vae, 16), text_encoder=build_text_encoder(bp.text_encoder), tokenizer=build_clip_tokenizer(),
        unet=build_unet(bp.unet, 8, 4, bp.text_encoder.hidden_size), scheduler=sampling_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        return any(w.requires_grad for w in load_pipeline(tmp, device="cpu").unet.parameters())


def by_kind(rows: list[dict], frozen: list[dict]) -> dict[str, dict]:
    """Per stage kind: stages, UNet samples, FLOPs now, with shared parts once, with attack weights frozen, both."""
    kinds: dict[str, dict] = {}
    for row, row_frozen in zip(rows, frozen):
        e = kinds.setdefault(row["kind"], dict.fromkeys(("stages", "unet_fwd", "unet_fwd_bwd", "flops", "flops_cached",
                                                         "flops_frozen", "flops_both"), 0.0))
        e["stages"] += 1
        e["unet_fwd"] += row["calls"].get("unet", 0)
        e["unet_fwd_bwd"] += sum(v for k, v in row["calls"].items() if k.startswith("unet_grad"))
        e["flops"] += row["flops"]
        e["flops_cached"] += row["flops_cached"]
        e["flops_frozen"] += row_frozen["flops"]
        e["flops_both"] += row_frozen["flops_cached"]
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]["flops"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="profiles/sd14.yaml")
    parser.add_argument("--peak-tflops", type=float, default=H100_DENSE_TFLOPS,
                        help="dense fp16/bf16 peak of the GPU (default: H100 SXM)")
    parser.add_argument("--utilisation", type=float, default=0.4, help="sustained share of the peak")
    parser.add_argument("--measured", default="logs/benchmarks/sd14_cuda_smoke.json",
                        help="benchmarks/sd14_cuda_smoke.py's JSON: adds a column at its measured throughput")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    if not 0 < args.utilisation <= 1:
        raise SystemExit(f"--utilisation must be in (0, 1], got {args.utilisation}")
    try:
        params = load_profile(args.profile)
    except ParamsError as err:
        raise SystemExit(str(err)) from None
    assumptions: list[str] = []
    flops = count_call_flops()
    weights_grad = loaded_weights_require_grad()
    rows, frozen = grid_calls(params, assumptions, weights_grad), grid_calls(params, [], weights_grad=False)
    price(rows, flops)
    price(frozen, flops)
    kinds = by_kind(rows, frozen)
    total = {k: sum(e[k] for e in kinds.values()) for k in ("flops", "flops_cached", "flops_frozen", "flops_both")}
    sustained = args.peak_tflops * args.utilisation
    measured = measured_tflops(Path(args.measured), flops["unet"])

    def hours(f: float, tflops: float = sustained) -> float:
        return f / (tflops * 1e12) / 3600

    def at_measured(f: float, bold: str = "") -> str:
        return f" {bold}{hours(f, measured[0]):,.1f}{bold} |" if measured else ""

    g = params.generate
    calls = sampler_calls(g.scheduler, g.steps)
    image = sum(n * flops[k] for k, n in images(1, calls).items())
    print("FLOPs per call, SD v1.4 shapes (FlopCounterMode on the meta device; per sample, counted at batch 2):\n")
    print("| call | GFLOP | x UNet forward |\n|---|---|---|")
    for name, what in CALLS.items():
        print(f"| {what} | {flops[name] / 1e9:,.1f} | {flops[name] / flops['unet']:.2f} |")
    print(f"\nOne CFG denoising step (batch 2): {2 * flops['unet'] / 1e12:.2f} TFLOP; one image ({calls} {g.scheduler} "
          f"UNet calls with CFG, text encoder, VAE decode): {image / 1e12:.1f} TFLOP\n")

    print(f"Projected grid of {args.profile}: {len(params.grid.concepts)} concepts x {len(params.grid.methods)} "
          f"methods x {len(params.grid.attacks)} attacks; one GPU at {sustained:.0f} TFLOP/s sustained "
          f"({args.peak_tflops:.0f} peak x {args.utilisation:.0%}). UNet columns count single samples (a CFG step "
          f"is 2) as the code runs now; the last GPU-h column after the savings below\n")
    extra = f" GPU-h at measured {measured[0]:.0f} TFLOP/s |" if measured else ""
    print(f"| stage kind | stages | UNet fwd | UNet fwd+bwd | PFLOP | GPU-h per stage | GPU-h total | "
          f"GPU-h total, after savings |{extra}\n|---|---|---|---|---|---|---|---|" + ("---|" if measured else ""))
    for kind, e in kinds.items():
        print(f"| {kind} | {e['stages']:.0f} | {e['unet_fwd']:,.0f} | {e['unet_fwd_bwd']:,.0f} | "
              f"{e['flops'] / 1e15:,.1f} | {hours(e['flops']) / e['stages']:,.2f} | {hours(e['flops']):,.1f} | "
              f"{hours(e['flops_both']):,.1f} |" + at_measured(e["flops"]))
    print(f"| **total** | {len(rows)} | | | {total['flops'] / 1e15:,.1f} | | **{hours(total['flops']):,.1f}** | "
          f"**{hours(total['flops_both']):,.1f}** |" + at_measured(total["flops"], "**"))
    print("\n| saving (estimate; the graph already shares the targets and Ring-A-Bell) | GPU-h after | saved |\n|---|---|---|")
    # where load_pipeline already freezes the weights, only the shared parts are left to save
    for label, key in SAVINGS if weights_grad else [s for s in SAVINGS if s[1] == "flops_cached"]:
        print(f"| {label} | {hours(total[key]):,.1f} | {hours(total['flops'] - total[key]):,.1f} "
              f"({1 - total[key] / total['flops']:.0%}) |")

    assumptions += [
        f"attacks' backward as the code runs now: `load_pipeline` leaves the weights "
        f"{'requiring grad, so every weight gradient is computed too' if weights_grad else 'frozen'}",
        f"throughput: {args.peak_tflops:.0f} TFLOP/s dense fp16/bf16 peak x {args.utilisation:.0%} utilisation, "
        "the same for every call; batch-1/2 UNet calls with attention usually reach less (set --utilisation)",
        "budgets are upper bounds: no attack stops early or skips a seed prompt whose image already shows the "
        "concept; Dark Miner runs all rounds and every verification passes",
        "ESD's x_t trajectory: the mean of its uniform length, (trajectory_steps - 1) / 2 CFG steps per training step",
        "backward FLOPs are counted (not assumed 2x); optimiser updates, the LoRA's own matmuls in the teacher pass, "
        "schedulers, tokenisers and data movement are not",
        "not counted: the judge/detectors, CLIP scores and FID/KID of evaluate, evaluate-cell and quality "
        "(one CLIP ViT-L/14 image pass is ~0.2 % of one image's generation), base-model training "
        "(sd14 downloads the model)",
    ]
    if measured:
        assumptions.append(f"measured throughput from {args.measured}: {measured[1]}")
    print("\nAssumptions:\n" + "\n".join(f"- {a}" for a in assumptions))
    if args.json:
        write_json(args.json, {
            "profile": args.profile, "flops_per_call": flops, "sustained_tflops": sustained,
            "measured_tflops": measured[0] if measured else None, "kinds": kinds, "assumptions": assumptions,
            "gpu_hours": {"now": hours(total["flops"]),
                          **{key.removeprefix("flops_"): hours(total[key]) for _, key in SAVINGS}},
            "stages": [{"stage": r["stage"], "kind": r["kind"], "flops": r["flops"], "flops_cached": r["flops_cached"],
                        "calls": dict(r["calls"])} for r in rows]})


if __name__ == "__main__":
    main()
