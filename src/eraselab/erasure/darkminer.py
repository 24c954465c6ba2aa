"""Dark Miner (Meng et al., arXiv 2409.17682): mine, verify, circumvent, in rounds.

Erasure trained on a few phrasings lowers the concept only for those phrasings. Dark Miner goes after
the *total* probability of the concept over all conditionings: each round it

1. **mines** the conditioning c that best explains images of the concept under the *current* model,
   min_c E_{x in pool, t, eps} ||eps - eps_theta(x_t | c, t)||^2, starting from a concept prompt;
2. **verifies** that c really generates the concept: generate from c with the current model and score
   s(c) = mean cos(F(x_c) - F(x_r), F(x_e) - F(x_r)) over the pool images x_e, with F an image encoder
   (CLIP) and x_r the anchor prompt's image for the same seed; only s(c) > tau goes on;
3. **circumvents** c: trains a LoRA so the model under c predicts what the frozen original predicts under
   the anchor, while staying equal to the original on the anchor, the empty prompt, -c and (ours) the
   concept's retain prompts.

Rounds stop after ``rounds`` or after ``patience`` consecutive failed verifications. No code was released
(the official repository holds only a README), so every open choice is a param; ``[ours]`` marks them.
The artifact is the LoRA (peft, safetensors) plus every mined conditioning; loading fuses the LoRA into
the UNet, so attacks and evaluators see an ordinary weight edit.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import image_latents
from eraselab.erasure.base import Defended, EraseContext, ErasureMethod, MethodParams
from eraselab.generate import SamplingConfig, encode_prompts, sample
from eraselab.models.text_encoding import encode_token_embeddings, token_embeddings, tokenize

LORA_FILE, MINED_FILE = "lora.safetensors", "mined.safetensors"


class DarkMinerParams(MethodParams):
    rounds: int = Field(10, gt=0)  # [ours] at most this many rounds
    patience: int = Field(2, gt=0)  # [ours] stop after this many consecutive failed verifications
    replay: bool = True  # [ours] circumventing also revisits every earlier mined conditioning
    # mining [paper: the pool and the loss; ours: its size, the space, steps, lr, initialisation]
    pool_size: int = Field(32, gt=0)  # concept images from the undefended model (training phrasings)
    batch_size: int = Field(4, gt=0)  # k pool images per step, in mining and circumventing
    mine_space: Literal["conditioning", "token_embeddings"] = "conditioning"  # what c is
    mine_steps: int = Field(40, gt=0)
    mine_lr: float = Field(2e-2, gt=0)
    # verifying [paper: the score; ours: tau, samples, the reference = anchor prompt, same seed]
    verify_samples: int = Field(4, gt=0)
    threshold: float = Field(0.2, ge=-1, le=1)  # tau
    verify_reference: Literal["paired", "shared"] = "paired"  # [ours] see verification_score
    # circumventing [paper: the objective; ours: LoRA on cross-attention, its size, weights]
    lora_rank: int = Field(4, gt=0)
    lora_alpha: float = Field(4.0, gt=0)
    lora_targets: list[str] = ["to_q", "to_k", "to_v", "to_out.0"]  # projections of every `attn2`
    circumvent_steps: int = Field(60, gt=0)
    circumvent_lr: float = Field(1e-2, gt=0)
    # regulariser weights (the paper does not ablate them); toy sweep on `red`: all 1.0 leaves the
    # concept at 0.12 after 6 rounds, all 0.5 at 0.00 after 10 with retention within 1 point
    anchor_weight: float = Field(0.5, ge=0)
    empty_weight: float = Field(0.5, ge=0)
    negative_weight: float = Field(0.5, ge=0)  # the -c regulariser
    retain_weight: float = Field(0.5, ge=0)  # [ours] the concept's retain prompts
    # how Dark Miner samples its pool and verification images [ours]: the grid's sampler by default. Its
    # own params, not `generate`, so a change to the grid's sampling does not rerun every erasure.
    sample_steps: int = Field(20, gt=0)
    sample_guidance: float = Field(4.0, ge=1)
    sample_scheduler: Literal["ddim", "dpm", "euler", "pndm"] = "ddim"
    seed: int = Field(0, ge=0)

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(steps=self.sample_steps, guidance=self.sample_guidance, scheduler=self.sample_scheduler)


# --- the three stages, each usable alone (tests, notebooks) -------------------------------------------
def noised_batch(pipe, latents: torch.Tensor, generator: torch.Generator):
    """x_t of each latent at its own uniform t; noise seeded on the CPU, so any device agrees."""
    t = torch.randint(pipe.scheduler.config.num_train_timesteps, (len(latents),), generator=generator)
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    t = t.to(latents.device)
    return pipe.scheduler.add_noise(latents, noise, t), t, noise


def denoising_loss(pipe, latents: torch.Tensor, cond: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """||eps - eps_theta(x_t | cond, t)||^2 over a batch of latents."""
    x_t, t, noise = noised_batch(pipe, latents, generator)
    return torch.nn.functional.mse_loss(
        pipe.unet(x_t, t, encoder_hidden_states=cond.expand(len(latents), -1, -1)).sample, noise)


def mine(pipe, pool: torch.Tensor, init_ids: torch.Tensor, params: DarkMinerParams, generator: torch.Generator
         ) -> tuple[torch.Tensor, list[float]]:
    """The conditioning (1 x 77 x d) the current model finds most likely to have made ``pool``."""
    encoder = pipe.text_encoder
    in_tokens = params.mine_space == "token_embeddings"

    def conditioning(variable):
        return encode_token_embeddings(encoder, variable) if in_tokens else variable

    with torch.no_grad():
        embeds = token_embeddings(encoder, init_ids)
        variable = (embeds if in_tokens else encode_token_embeddings(encoder, embeds)).clone()
    variable.requires_grad_(True)
    optimizer = torch.optim.Adam([variable], lr=params.mine_lr)
    losses = []
    for _ in range(params.mine_steps):
        batch = torch.randint(len(pool), (params.batch_size,), generator=generator)
        loss = denoising_loss(pipe, pool[batch], conditioning(variable), generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        cond = conditioning(variable)
    return cond.detach(), losses


def verification_score(images: np.ndarray, references: np.ndarray, pool_images: np.ndarray, image_features,
                       pool_references: np.ndarray | None = None) -> float:
    """Mean over samples i and pool images e of cos(F(x_i) - F(r_i), F(x_e) - F(r_e)): high when c moves
    an image the way the concept does. r_i: the anchor's image for sample i's seed. r_e: the paper uses
    r_i again (``pool_references=None``); ``paired`` [ours] uses e's own anchor image (its prompt without
    the concept, its seed), so F(x_e) - F(r_e) holds the concept alone. Measured on the toy model, the
    shared reference scores a random conditioning as high as the concept (both differ from r_i)."""
    f_x, f_r, f_e = (image_features(a).float() for a in (images, references, pool_images))
    moved = (f_x - f_r)[:, None]  # n x 1 x D
    if pool_references is None:
        concept = f_e[None] - f_r[:, None]  # n x P x D
    else:
        concept = (f_e - image_features(pool_references).float())[None]  # 1 x P x D
    moved, concept = torch.broadcast_tensors(moved, concept)
    return float(torch.nn.functional.cosine_similarity(moved, concept, dim=-1).mean())


def verify(pipe, cond: torch.Tensor, anchor: torch.Tensor, pool_images: np.ndarray, seeds: list[int],
           image_features, sampling: SamplingConfig, pool_references: np.ndarray | None = None) -> float:
    """Generate from ``cond`` and from the anchor with the current model (same seeds) and score them."""
    n = len(seeds)
    with torch.no_grad():
        images = sample(pipe, cond.expand(n, -1, -1), seeds, sampling, progress=False)
        references = sample(pipe, anchor.expand(n, -1, -1), seeds, sampling, progress=False)
    return verification_score(images, references, pool_images, image_features, pool_references)


def circumvent(pipe, pool: torch.Tensor, mined: list[tuple[torch.Tensor, torch.Tensor]],
               regularisers: list[tuple[float, torch.Tensor]], params: DarkMinerParams, generator: torch.Generator,
               rng: random.Random) -> list[float]:
    """Train the LoRA: eps_theta(x_t | c) -> eps_0(x_t | anchor), and eps_theta = eps_0 on the regularisers.

    ``mined`` holds (c, its anchor) pairs, the newest last; with replay each step also takes one earlier
    pair. ``regularisers`` are (weight, K x 77 x d contexts): each step keeps one context of each. eps_0 is
    the same UNet with its adapter switched off: no second copy of the weights.
    """
    unet = pipe.unet
    lora = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in lora:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(lora, lr=params.circumvent_lr)
    losses = []
    for _ in range(params.circumvent_steps):
        pairs = [mined[-1]] + ([mined[rng.randrange(len(mined) - 1)]] if params.replay and len(mined) > 1 else [])
        keep = [(w, ctx[rng.randrange(len(ctx))][None]) for w, ctx in regularisers if w > 0 and len(ctx)]
        x_t, t, _ = noised_batch(pipe, pool[torch.randint(len(pool), (params.batch_size,), generator=generator)],
                                 generator)
        student = [c for c, _ in pairs] + [c for _, c in keep]
        teacher = [a for _, a in pairs] + [c for _, c in keep]
        weights = torch.tensor([1.0] * len(pairs) + [w for w, _ in keep])
        k, n = len(x_t), len(student)

        def predict(contexts):
            return unet(x_t.repeat(n, 1, 1, 1), t.repeat(n),
                        encoder_hidden_states=torch.cat([c.expand(k, -1, -1) for c in contexts])).sample

        with torch.no_grad():
            unet.disable_adapters()
            goal = predict(teacher)
            unet.enable_adapters()
        per_term = ((predict(student) - goal) ** 2).flatten(1).mean(1).view(n, k).mean(1)
        loss = (weights.to(per_term) * per_term).sum() / len(pairs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    for p in lora:
        p.requires_grad_(False)
    return losses


def stop_reason(passed: list[bool], rounds: int, patience: int) -> str | None:
    """Why the rounds end after this history of verifications, or None to go on."""
    if len(passed) >= patience and not any(passed[-patience:]):
        return f"{patience} failed verifications in a row"
    if len(passed) >= rounds:
        return f"reached {rounds} rounds"
    return None


def lora_config(params: DarkMinerParams):
    from peft import LoraConfig

    targets = "|".join(t.replace(".", r"\.") for t in params.lora_targets)
    return LoraConfig(r=params.lora_rank, lora_alpha=params.lora_alpha, init_lora_weights=True,
                      target_modules=rf".*\.attn2\.({targets})")


class DarkMiner(ErasureMethod):
    seeded = True  # its result depends on params.seed (grid.train_seeds retrains it with others)
    name = "darkminer"
    edits_weights = True
    needs_image_features = True
    Params = DarkMinerParams

    def erase(self, pipe, concept, params, out, context=None):
        if context is None or context.image_features is None:
            raise ValueError("darkminer verifies with image features: give the erase stage --clip")
        from safetensors.torch import save_file

        torch.manual_seed(params.seed)
        rng = random.Random(params.seed)
        generator = torch.Generator().manual_seed(params.seed)
        unet, device = pipe.unet, pipe.unet.device
        unet.requires_grad_(False)
        pipe.text_encoder.requires_grad_(False)
        erase, anchors = list(concept.erase_prompts), list(concept.anchor_prompts)

        # the pool: the undefended model's images of the concept, from its training phrasings
        pool_prompts = [erase[i % len(erase)] for i in range(params.pool_size)]
        pool_seeds = [rng.randrange(2**31) for _ in pool_prompts]
        with torch.no_grad():
            pool_images = sample(pipe, encode_prompts(pipe, pool_prompts), pool_seeds, params.sampling, progress=False)
            pool = image_latents(pipe, pool_images)
            pool_references = None
            if params.verify_reference == "paired":
                pool_anchors = [anchors[i % len(anchors)] for i in range(params.pool_size)]
                pool_references = sample(pipe, encode_prompts(pipe, pool_anchors), pool_seeds, params.sampling,
                                         progress=False)
            empty = encode_prompts(pipe, [""])
            retain = encode_prompts(pipe, list(concept.retain_prompts))

        unet.add_adapter(lora_config(params))
        unet.requires_grad_(False)
        mined: list[tuple[torch.Tensor, torch.Tensor]] = []
        passed: list[bool] = []
        rounds, curve, timing = [], [], {}
        progress = tqdm(desc=f"{self.name} {concept.name}", total=params.rounds, mininterval=10)
        while (reason := stop_reason(passed, params.rounds, params.patience)) is None:
            r = len(passed)
            start = time.perf_counter()
            which = r % len(erase)  # [ours] each round starts from the next training phrasing
            init = tokenize(pipe.tokenizer, [erase[which]], device)
            with torch.no_grad():
                anchor = encode_prompts(pipe, [anchors[which]])
            cond, mine_losses = mine(pipe, pool, init, params, generator)
            seeds = [rng.randrange(2**31) for _ in range(params.verify_samples)]
            score = verify(pipe, cond, anchor, pool_images, seeds, context.image_features, params.sampling,
                           pool_references)
            ok = score > params.threshold
            passed.append(ok)
            circumvent_losses = []
            if ok:
                mined.append((cond, anchor))
                regularisers = [(params.anchor_weight, anchor), (params.empty_weight, empty),
                                (params.negative_weight, -cond), (params.retain_weight, retain)]
                circumvent_losses = circumvent(pipe, pool, mined, regularisers, params, generator, rng)
            rounds.append({"round": r, "init": erase[which], "mine_loss_first": mine_losses[0],
                           "mine_loss_last": mine_losses[-1], "verify_score": score, "passed": ok})
            for loss in circumvent_losses:
                curve.append({"step": len(curve), "loss": loss, "round": r, "verify_score": score})
            timing[f"round_{r}_s"] = time.perf_counter() - start
            progress.update()
        progress.close()

        from peft.utils import get_peft_model_state_dict

        state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}
        save_file(state, Path(out) / LORA_FILE)
        save_file({f"round_{i}": c.detach().cpu().contiguous() for i, (c, _) in enumerate(mined)} or
                  {"none": torch.zeros(0)}, Path(out) / MINED_FILE)
        return {"loss": curve, "timing": timing, "rounds": rounds, "stopped": reason,
                "circumvented": len(mined), "lora_parameters": sum(v.numel() for v in state.values())}

    def load(self, pipe, artifact, config):
        from peft.utils import set_peft_model_state_dict

        from eraselab.erasure.base import ArtifactError, read_manifest, read_tensors

        params = DarkMinerParams.model_validate(read_manifest(Path(artifact))["params"])
        path = Path(artifact) / LORA_FILE
        lora = read_tensors(path)
        unet = pipe.unet
        unet.add_adapter(lora_config(params))
        try:
            result = set_peft_model_state_dict(unet, lora)
            problem = ("" if not getattr(result, "unexpected_keys", None) else
                       f"it names layers this UNet lacks, e.g. {result.unexpected_keys[:3]}")
        except RuntimeError as err:  # shapes of another architecture (torch's "size mismatch for ...")
            problem = str(err).strip().splitlines()[-1].strip()
        if problem:
            unet.unload_lora()  # the pipeline as it was: nothing of the artifact applied
            raise ArtifactError(f"{path}: LoRA does not fit this UNet: {problem} (made for another architecture?)")
        unet.fuse_lora()  # one ordinary weight edit from here on: no adapter cost in sampling or attacks
        unet.unload_lora()
        return Defended(pipe, self.name, config)

