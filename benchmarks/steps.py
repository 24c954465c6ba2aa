"""Per-step cost of the iterative methods and attacks: our code vs a minimal plain-PyTorch loop of the same loss.

Steps timed: ESD-x's training step, Dark Miner's mining step and circumventing step, UnlearnDiffAtk's step.
Our code runs through its public entry points (`EsdX.erase`, `darkminer.mine`, `darkminer.circumvent`,
`UnlearnDiffAtk.run`) with the grid's params (params.yaml, else the defaults); its per-step time is
(run with --steps steps - run with --few steps) / the difference, so set-up (UNet copy, generations,
saving) cancels. The plain loops call only torch, diffusers and transformers modules, draw the same random
numbers in the same order (ESD: the same trajectory lengths), and time the same steps. Each row's median
over --repeats. Extra rows measure what caching or freezing would save:

- ESD-x: the frozen text encoder re-encodes the step's prompts every step; cached per cell instead.
- Dark Miner circumventing: the frozen teacher (adapter off) is evaluated on the newest anchor twice per
  step (as the mined pair's target and as the anchor regulariser), and on the real path (anchor = the empty
  prompt) four times; computed once per distinct context instead.
- UnlearnDiffAtk: with the pipeline's weights requiring grad (as `load_pipeline` left them before it froze
  them), each backward also computes (and accumulates) every weight gradient: both states are timed.

Usage (repo root): python benchmarks/steps.py [--model DIR] [--threads 1] [--steps 20] [--few 2]
                   [--repeats 3] [--concept red] [--only ...] [--json PATH]
Without --model: models/base, or where it is missing a random-weight pipeline of the toy model's shape.
"""

from __future__ import annotations

import argparse
import copy
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import eraselab._compat  # noqa: F401  (before torchvision users)
from diffusers import DDIMScheduler, StableDiffusionPipeline
from transformers.masking_utils import create_causal_mask

from eraselab._compat import set_threads
from eraselab.io import write_json

mse = torch.nn.functional.mse_loss
FINDINGS = """
Frozen-model outputs recomputed per step (what the extra rows measure):
- ESD-x: the frozen text encoder re-encodes the step's prompts, drawn from a fixed set: cacheable per cell. The
  frozen teacher's predictions are not: x_t comes from the current model's own trajectory, new every step.
- Dark Miner circumventing: the frozen teacher (adapter off) sees the newest anchor twice per step (pair target
  and anchor regulariser); with SD presets' empty anchor, four of its six contexts are the empty prompt. Each
  distinct context once gives the same loss (tests check it). x_t is drawn per step, so nothing caches per cell.
- Dark Miner mining and UnlearnDiffAtk: nothing frozen is recomputed (x_t and the prompt change every step);
  UnlearnDiffAtk's waste, where weights require grad, is their gradients."""


# --- set-up (framework code is fine here: it is not timed) --------------------------------------------
def grid_params(path: Path):
    from eraselab.params import Params, ParamsError, load_params

    try:
        return load_params(path) if path.exists() else Params()
    except ParamsError as err:
        raise SystemExit(str(err)) from None


DEFAULT_MODEL = "models/base"


def model_dir(model: str | None, scratch: Path) -> tuple[Path, str]:
    """``model``, else the trained base model, else a random-weight pipeline of the toy model's shape."""
    if model is not None:
        if not Path(model).is_dir():
            raise SystemExit(f"--model {model}: no such pipeline directory (leave --model out to use "
                             f"{DEFAULT_MODEL}, or random weights where it is missing)")
        return Path(model), model
    if Path(DEFAULT_MODEL).is_dir():
        return Path(DEFAULT_MODEL), DEFAULT_MODEL
    from eraselab.models.components import build_text_encoder, build_unet, build_vae, sampling_scheduler
    from eraselab.models.tokenizer import build_clip_tokenizer
    from eraselab.params import Params

    p, image = Params().base_model, Params().world.image_size
    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(
        vae=build_vae(p.vae, image), text_encoder=build_text_encoder(p.text_encoder), tokenizer=build_clip_tokenizer(),
        unet=build_unet(p.unet, image // 2 ** (len(p.vae.block_channels) - 1), p.vae.latent_channels,
                        p.text_encoder.hidden_size),
        scheduler=sampling_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(scratch / "random", safe_serialization=True)
    return scratch / "random", f"random weights, toy shape ({DEFAULT_MODEL} not found)"


def fresh(path: Path):
    """A newly loaded pipeline: erasure and attacks change weights or their gradients."""
    from eraselab.models import load_pipeline

    return load_pipeline(path, device="cpu")


def loaded_weights_require_grad(path: Path) -> bool:
    """Whether `load_pipeline` hands over a UNet whose weights require grad (attacks then pay for their grads)."""
    return any(w.requires_grad for w in fresh(path).unet.parameters())


def toy_concept(params, name: str):
    from eraselab.prompts.world_prompts import concept_spec
    from eraselab.world.dataset import WorldSpec

    return concept_spec(WorldSpec.from_params(params.world), name, params.prompts.per_concept, params.prompts.seed)


# --- plain-PyTorch pieces (no eraselab code) ----------------------------------------------------------
def embed(pipe, texts: list[str]) -> torch.Tensor:
    tok = pipe.tokenizer
    ids = tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    with torch.no_grad():
        return pipe.text_encoder(ids)[0]


def embed_tokens(text_encoder, embeds: torch.Tensor) -> torch.Tensor:
    """CLIP's text forward from token embeddings (transformers 5's forward takes ids only)."""
    hidden = text_encoder.embeddings(inputs_embeds=embeds)
    mask = create_causal_mask(config=text_encoder.config, inputs_embeds=hidden, attention_mask=None,
                              past_key_values=None)
    hidden = text_encoder.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
    return text_encoder.final_layer_norm(hidden)


def simplex(w: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean projection onto the probability simplex (sort-based)."""
    u = w.sort(dim=-1, descending=True).values
    css = u.cumsum(-1) - 1
    k = torch.arange(1, w.shape[-1] + 1, dtype=w.dtype)
    rho = ((u - css / k) > 0).to(w.dtype).cumsum(-1).argmax(-1, keepdim=True)
    return (w - css.gather(-1, rho) / (rho + 1).to(w.dtype)).clamp(min=0)


class Clock:
    """Per-step wall times (and losses, which tests compare with our code's) of a plain loop."""

    def __init__(self):
        self.times: list[float] = []
        self.losses: list[float] = []

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.times.append(time.perf_counter() - self.start)


# --- ESD-x --------------------------------------------------------------------------------------------
def esd_framework(path, params, concept, steps: int) -> float:
    from eraselab.erasure.esd import EsdX

    pipe = fresh(path)
    p = EsdX.Params.model_validate({**params.erase.get("esd_x", {}), "steps": steps})
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        EsdX().erase(pipe, concept, p, Path(out))
        return time.perf_counter() - start


def esd_plain(path, params, concept, steps: int, cache_text: bool = False) -> Clock:
    from eraselab.erasure.esd import EsdX  # its params only

    p = EsdX.Params.model_validate({**params.erase.get("esd_x", {}), "steps": steps})
    pipe = fresh(path)
    unet, cfg = pipe.unet, pipe.unet.config
    frozen = copy.deepcopy(unet).requires_grad_(False)
    unet.requires_grad_(False)
    trained = [w for n, w in unet.named_parameters() if ".attn2." in n]
    for w in trained:
        w.requires_grad_(True)
    optimizer = torch.optim.Adam(trained, lr=p.lr)
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(p.trajectory_steps)
    prompts = list(concept.erase_prompts)
    empty = embed(pipe, [""])
    cache = {text: embed(pipe, [text]) for text in set(prompts)} if cache_text else None
    shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    rng, clock = random.Random(p.seed), Clock()
    for _ in range(p.steps):
        with clock:
            batch = [prompts[rng.randrange(len(prompts))] for _ in range(p.batch_size)]
            cond = torch.cat([cache[x] for x in batch]) if cache_text else embed(pipe, batch)
            context = torch.cat([empty.expand(len(batch), -1, -1), cond])
            stop = rng.randrange(p.trajectory_steps)
            seeds = [rng.randrange(2**31) for _ in batch]
            x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
            with torch.no_grad():
                for t in scheduler.timesteps[:stop]:
                    eps_u, eps_c = unet(torch.cat([x, x]), t, encoder_hidden_states=context).sample.chunk(2)
                    x = scheduler.step(eps_u + p.trajectory_guidance * (eps_c - eps_u), t, x).prev_sample
                t = scheduler.timesteps[stop]
                eps_e, eps_c = frozen(torch.cat([x, x]), t, encoder_hidden_states=context).sample.chunk(2)
                target = eps_e - p.eta * (eps_c - eps_e)
            loss = mse(unet(x, t, encoder_hidden_states=cond).sample, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock.losses.append(loss.item())
    return clock


# --- Dark Miner -----------------------------------------------------------------------------------------
def darkminer_setup(path, params, concept):
    """A pipeline with Dark Miner's LoRA attached (as during its rounds), a pool of latents, contexts."""
    from eraselab.erasure.darkminer import DarkMinerParams, lora_config

    p = DarkMinerParams.model_validate(params.erase.get("darkminer", {}))
    pipe = fresh(path)
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    torch.manual_seed(p.seed)  # the LoRA's initialisation: the same in every set-up
    pipe.unet.add_adapter(lora_config(p))
    pipe.unet.requires_grad_(False)
    cfg = pipe.unet.config
    # the pool's values do not change the cost: random latents of the model's latent shape
    pool = torch.randn(p.pool_size, cfg.in_channels, cfg.sample_size, cfg.sample_size,
                       generator=torch.Generator().manual_seed(0))
    erase, anchor = concept.erase_prompts[0], concept.anchor_prompts[0]
    contexts = {"cond": embed(pipe, [erase]), "old": embed(pipe, [concept.erase_prompts[1]]),
                "anchor": embed(pipe, [anchor]), "old_anchor": embed(pipe, [concept.anchor_prompts[1]]),
                "empty": embed(pipe, [""]),
                "retain": embed(pipe, list(concept.retain_prompts))}
    ids = pipe.tokenizer([erase], padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids
    return pipe, p, pool, contexts, ids


def mine_framework(path, params, concept, steps: int) -> float:
    from eraselab.erasure.darkminer import mine

    pipe, p, pool, _, ids = darkminer_setup(path, params, concept)
    start = time.perf_counter()
    mine(pipe, pool, ids, p.model_copy(update={"mine_steps": steps}), torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def noised(pipe, latents, generator):
    t = torch.randint(pipe.scheduler.config.num_train_timesteps, (len(latents),), generator=generator)
    noise = torch.randn(latents.shape, generator=generator)
    return pipe.scheduler.add_noise(latents, noise, t), t, noise


def mine_plain(path, params, concept, steps: int) -> Clock:
    pipe, p, pool, contexts, _ = darkminer_setup(path, params, concept)
    variable = contexts["cond"].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([variable], lr=p.mine_lr)
    generator, clock = torch.Generator().manual_seed(0), Clock()
    for _ in range(steps):
        with clock:
            batch = pool[torch.randint(len(pool), (p.batch_size,), generator=generator)]
            x_t, t, noise = noised(pipe, batch, generator)
            loss = mse(pipe.unet(x_t, t, encoder_hidden_states=variable.expand(len(batch), -1, -1)).sample, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock.losses.append(loss.item())
    return clock


def circumvent_inputs(contexts: dict, p, anchor_is_empty: bool):
    """Two mined pairs (a round with replay) and the four regularisers, as `DarkMiner.erase` builds them."""
    anchor, old_anchor = ((contexts["empty"], contexts["empty"]) if anchor_is_empty
                          else (contexts["anchor"], contexts["old_anchor"]))
    mined = [(contexts["old"], old_anchor), (contexts["cond"], anchor)]
    regularisers = [(p.anchor_weight, anchor), (p.empty_weight, contexts["empty"]),
                    (p.negative_weight, -contexts["cond"]), (p.retain_weight, contexts["retain"])]
    return mined, regularisers


def circumvent_framework(path, params, concept, steps: int, anchor_is_empty: bool = False) -> float:
    from eraselab.erasure.darkminer import circumvent

    pipe, p, pool, contexts, _ = darkminer_setup(path, params, concept)
    mined, regularisers = circumvent_inputs(contexts, p, anchor_is_empty)
    start = time.perf_counter()
    circumvent(pipe, pool, mined, regularisers, p.model_copy(update={"circumvent_steps": steps}),
               torch.Generator().manual_seed(0), random.Random(0))
    return time.perf_counter() - start


def distinct(contexts: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
    """The distinct contexts and, for each input, the index of its distinct one."""
    unique, index = [], []
    for c in contexts:
        hit = next((i for i, u in enumerate(unique) if u.shape == c.shape and torch.equal(u, c)), None)
        if hit is None:
            unique.append(c)
            hit = len(unique) - 1
        index.append(hit)
    return unique, index


def circumvent_plain(path, params, concept, steps: int, dedupe: bool = False, anchor_is_empty: bool = False
                     ) -> Clock:
    pipe, p, pool, contexts, _ = darkminer_setup(path, params, concept)
    mined, regularisers = circumvent_inputs(contexts, p, anchor_is_empty)
    unet = pipe.unet
    lora = [w for n, w in unet.named_parameters() if "lora_" in n]
    for w in lora:
        w.requires_grad_(True)
    optimizer = torch.optim.Adam(lora, lr=p.circumvent_lr)
    generator, rng, clock = torch.Generator().manual_seed(0), random.Random(0), Clock()
    for _ in range(steps):
        with clock:
            pairs = [mined[-1]] + ([mined[rng.randrange(len(mined) - 1)]] if p.replay and len(mined) > 1 else [])
            keep = [(w, ctx[rng.randrange(len(ctx))][None]) for w, ctx in regularisers if w > 0 and len(ctx)]
            x_t, t, _ = noised(pipe, pool[torch.randint(len(pool), (p.batch_size,), generator=generator)], generator)
            student = [c for c, _ in pairs] + [c for _, c in keep]
            teacher = [a for _, a in pairs] + [c for _, c in keep]
            weights = torch.tensor([1.0] * len(pairs) + [w for w, _ in keep])
            k = len(x_t)

            def predict(ctx, index):  # one UNet call over the given contexts, rows re-expanded to ``index``
                out = unet(x_t.repeat(len(ctx), 1, 1, 1), t.repeat(len(ctx)),
                           encoder_hidden_states=torch.cat([c.expand(k, -1, -1) for c in ctx])).sample
                return out.view(len(ctx), k, *out.shape[1:])[index].flatten(0, 1)

            identity = list(range(len(student)))
            with torch.no_grad():
                unet.disable_adapters()
                goal = predict(*distinct(teacher)) if dedupe else predict(teacher, identity)
                unet.enable_adapters()
            prediction = predict(*distinct(student)) if dedupe else predict(student, identity)
            per_term = ((prediction - goal) ** 2).flatten(1).mean(1).view(len(student), k).mean(1)
            loss = (weights * per_term).sum() / len(pairs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock.losses.append(loss.item())
    return clock


# --- UnlearnDiffAtk -------------------------------------------------------------------------------------
def never(images: np.ndarray) -> np.ndarray:  # the success oracle never fires: the whole budget is spent
    return np.zeros(len(images), bool)


def attack_params(params, steps: int):
    from eraselab.attacks.unlearndiffatk import UnlearnDiffAtkParams

    # one block of `steps` steps at one timestep, then one query: the per-step loop is what is timed
    return UnlearnDiffAtkParams.model_validate({**params.attack.get("unlearndiffatk", {}), "timesteps": 1,
                                                "steps_per_timestep": steps})


def unlearndiff_framework(path, params, concept, steps: int, weights_grad: bool | None = None) -> float:
    from eraselab.attacks.base import Checker
    from eraselab.attacks.unlearndiffatk import UnlearnDiffAtk
    from eraselab.erasure.base import Defended
    from eraselab.generate import SamplingConfig

    g = params.generate
    # its three generations (pre-check, target, query) are set-up that cancels: 2 sampler steps keep them short
    config = SamplingConfig(steps=2, guidance=g.guidance, scheduler=g.scheduler, batch_size=g.batch_size)
    defended, undefended = fresh(path), fresh(path)
    if weights_grad is not None:  # None: as `load_pipeline` leaves them
        for module in (defended.unet, defended.text_encoder):
            module.requires_grad_(weights_grad)
    checker = Checker(present=never, image_features=lambda images: torch.zeros(len(images), 1))
    seeds = [{"prompt": concept.erase_prompts[0], "seed": 1}]
    start = time.perf_counter()
    UnlearnDiffAtk().run(Defended(defended, "none", config), undefended, concept, seeds, attack_params(params, steps),
                         checker)
    return time.perf_counter() - start


def unlearndiff_plain(path, params, concept, steps: int) -> Clock:
    from eraselab.attacks.base import attack_vocabulary, splice  # set-up: which ids, which slots

    p = attack_params(params, steps)
    pipe = fresh(path)
    pipe.unet.requires_grad_(False)
    encoder = pipe.text_encoder.requires_grad_(False)
    cfg = pipe.unet.config
    vocab = attack_vocabulary(pipe.tokenizer, concept, p.vocabulary)
    table = encoder.embeddings.token_embedding(vocab).detach()
    ids, slots = splice(pipe.tokenizer, concept.erase_prompts[0], p.tokens, "prefix")
    base = encoder.embeddings.token_embedding(ids).detach()
    target = torch.randn(1, cfg.in_channels, cfg.sample_size, cfg.sample_size)  # the value does not change the cost
    t = int(0.5 * pipe.scheduler.config.num_train_timesteps)
    weights = torch.full((len(slots), len(vocab)), 1.0 / len(vocab), requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=p.lr, weight_decay=p.weight_decay)
    generator, clock = torch.Generator().manual_seed(0), Clock()
    for _ in range(steps):
        with clock:
            choice = torch.multinomial(weights.detach(), 1, generator=generator).squeeze(-1)
            relaxed = torch.nn.functional.one_hot(choice, len(vocab)).to(weights) + weights - weights.detach()
            embeds = base.clone()
            embeds[slots] = relaxed @ table
            cond = embed_tokens(encoder, embeds[None])
            noise = torch.randn(target.shape, generator=generator)
            x_t = pipe.scheduler.add_noise(target, noise, torch.tensor([t]))
            loss = mse(pipe.unet(x_t, torch.tensor(t), encoder_hidden_states=cond).sample, noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            clock.losses.append(loss.item())
            with torch.no_grad():
                weights.copy_(simplex(weights))
    return clock


# --- measuring ------------------------------------------------------------------------------------------
def framework_step(run, few: int, many: int, repeats: int) -> float:
    """Seconds per step of our code: (run(many) - run(few)) / (many - few), median over repeats."""
    return statistics.median((run(many) - run(few)) / (many - few) for _ in range(repeats))


def plain_step(run, few: int, many: int, repeats: int) -> float:
    """Seconds per step of a plain loop over the same steps few..many-1, median over repeats."""
    return statistics.median(sum(run(many).times[few:]) / (many - few) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help=f"a pipeline directory (default: {DEFAULT_MODEL}, else random weights)")
    parser.add_argument("--params", default="params.yaml", help="the grid's params (method and attack settings)")
    parser.add_argument("--concept", default="red", help="a toy-world concept")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="steps of the long run")
    parser.add_argument("--few", type=int, default=2, help="steps of the short run (set-up cancels)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=["esd_x", "mine", "circumvent", "unlearndiffatk"],
                        help="time only these steps")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not 1 <= args.few < args.steps or args.repeats < 1:
        raise SystemExit("need 1 <= --few < --steps and --repeats >= 1")
    set_threads(args.threads)
    params = grid_params(Path(args.params))
    try:
        concept = toy_concept(params, args.concept)
    except ValueError as err:
        raise SystemExit(f"--concept: {err}") from None
    few, many, reps = args.few, args.steps, args.repeats
    rows = []

    def row(name, ours, plain, note=""):
        rows.append({"step": name, "ours_s": ours, "plain_s": plain, "note": note})
        print(f"  {name}: ours {ours and f'{ours:.4f}'} s, plain {plain and f'{plain:.4f}'} s", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        path, model = model_dir(args.model, Path(scratch))
        run = lambda fn, **kw: (lambda k: fn(path, params, concept, k, **kw))  # noqa: E731
        chosen = set(args.only or ["esd_x", "mine", "circumvent", "unlearndiffatk"])
        if "esd_x" in chosen:
            row("ESD-x training step", framework_step(run(esd_framework), few, many, reps),
                plain_step(run(esd_plain), few, many, reps), "x_t from a trajectory of the current model")
            row("ESD-x, prompt embeddings cached per cell", None,
                plain_step(run(esd_plain, cache_text=True), few, many, reps), "frozen text encoder run once")
        if "mine" in chosen:
            row("Dark Miner mining step", framework_step(run(mine_framework), few, many, reps),
                plain_step(run(mine_plain), few, many, reps), "LoRA attached, as during the rounds")
        if "circumvent" in chosen:
            row("Dark Miner circumventing step", framework_step(run(circumvent_framework), few, many, reps),
                plain_step(run(circumvent_plain), few, many, reps), "round with replay: 6 contexts x batch")
            row("Dark Miner circumventing, distinct contexts once", None,
                plain_step(run(circumvent_plain, dedupe=True), few, many, reps),
                "teacher 6 -> 5 contexts (the newest anchor twice)")
            row("Dark Miner circumventing, anchor = empty prompt (sd14 presets)",
                framework_step(run(circumvent_framework, anchor_is_empty=True), few, many, reps),
                plain_step(run(circumvent_plain, anchor_is_empty=True), few, many, reps), "")
            row("Dark Miner circumventing, anchor = empty prompt, distinct contexts once", None,
                plain_step(run(circumvent_plain, dedupe=True, anchor_is_empty=True), few, many, reps),
                "teacher 6 -> 3 contexts, student 6 -> 5")
        if "unlearndiffatk" in chosen:
            loaded = "require grad" if loaded_weights_require_grad(path) else "frozen"
            row(f"UnlearnDiffAtk step (weights {loaded}, as `load_pipeline` leaves them)",
                framework_step(run(unlearndiff_framework), few, many, reps),
                plain_step(run(unlearndiff_plain), few, many, reps), "plain: weights frozen")
            other = loaded == "frozen"
            row(f"UnlearnDiffAtk step, weights set to {'require grad' if other else 'frozen'}",
                framework_step(run(unlearndiff_framework, weights_grad=other), few, many, reps), None,
                "backward also computes every UNet/text weight's gradient" if other else "")

    print(f"\nMachine: {platform.processor() or platform.machine()}, torch threads {args.threads}, model: {model}, "
          f"concept {args.concept}; per step = (run of {many} - run of {few}) / {many - few}, median of {reps}\n")
    print("| step | ours (s/step) | ours (steps/s) | plain PyTorch (steps/s) | ours / plain time | note |\n"
          "|---|---|---|---|---|---|")
    fmt = lambda s, f: "—" if s is None else format(s, f)  # noqa: E731
    for r in rows:
        ratio = r["ours_s"] / r["plain_s"] if r["ours_s"] and r["plain_s"] else None
        print(f"| {r['step']} | {fmt(r['ours_s'], '.4f')} | {fmt(r['ours_s'] and 1 / r['ours_s'], '.2f')} | "
              f"{fmt(r['plain_s'] and 1 / r['plain_s'], '.2f')} | {fmt(ratio, '.2f')} | {r['note']} |")
    print(FINDINGS)
    if args.json:
        write_json(args.json, {"threads": args.threads, "model": model, "concept": args.concept, "steps": many,
                               "few": few, "repeats": reps, "rows": rows})


if __name__ == "__main__":
    main()
