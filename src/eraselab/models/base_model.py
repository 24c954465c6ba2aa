"""Train the toy text-to-image model from scratch and save it in StableDiffusionPipeline layout.

1. VAE on world images (reconstruction + a small KL term), as SD's autoencoder.
2. Latents encoded once (posterior mean) and scaled to unit variance, as SD's ``scaling_factor``.
3. UNet and CLIP text encoder trained jointly on (latent, caption): epsilon prediction under SD's noise
   schedule, min-SNR weighting, caption dropout for classifier-free guidance, EMA weights saved.
Captions are re-sampled every step (random phrasing, synonyms, omitted attributes) from the training
phrasings only; the held-out phrasings stay unseen for evaluation.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr
from tqdm import tqdm

from eraselab.io import atomic_dir
from eraselab.models.components import build_text_encoder, build_unet, build_vae, sampling_scheduler, training_scheduler
from eraselab.models.tokenizer import build_clip_tokenizer
from eraselab.world import Labels, sample_caption
from eraselab.world.dataset import WorldSpec, load_split


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def train_vae(vae, images: torch.Tensor, p, generator: torch.Generator, log: list) -> None:
    opt = torch.optim.AdamW(vae.parameters(), lr=p.lr, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=min(100, p.steps // 10), num_training_steps=p.steps)
    vae.train()
    for step in tqdm(range(p.steps), desc="vae", mininterval=5):
        x = images[torch.randint(len(images), (p.batch_size,), generator=generator)]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        mse = F.mse_loss(recon, x)
        loss = mse + p.kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == p.steps - 1:
            log.append({"stage": "vae", "step": step, "loss": float(loss), "psnr": float(10 * torch.log10(4 / mse))})
    vae.eval()


@torch.no_grad()
def encode_latents(vae, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([vae.encode(images[i : i + batch]).latent_dist.mean for i in range(0, len(images), batch)])


@torch.no_grad()
def reconstruction_psnr(vae, images: torch.Tensor) -> float:
    latents = encode_latents(vae, images)
    recon = torch.cat([vae.decode(latents[i : i + 256]).sample for i in range(0, len(latents), 256)]).clamp(-1, 1)
    return float(10 * torch.log10(4 / F.mse_loss(recon, images)))


class CaptionSampler:
    """Draws a fresh training caption per image per step; tokenization is cached per distinct caption."""

    def __init__(self, spec: WorldSpec, labels: np.ndarray, tokenizer, p, seed: int):
        self.names = [Labels(spec.shapes[s], spec.colours[c], spec.textures[t]) for s, c, t in labels]
        self.tokenizer, self.p = tokenizer, p
        self.rng = random.Random(seed)
        self.cache: dict[str, torch.Tensor] = {}

    def ids(self, caption: str) -> torch.Tensor:
        if caption not in self.cache:
            self.cache[caption] = self.tokenizer(caption, padding="max_length", max_length=self.tokenizer.model_max_length,
                                                 truncation=True, return_tensors="pt").input_ids[0]
        return self.cache[caption]

    def __call__(self, indices: torch.Tensor) -> torch.Tensor:
        captions = []
        for i in indices.tolist():
            if self.rng.random() < self.p.caption_dropout:
                captions.append("")  # the unconditional prompt, exactly as the pipeline encodes it
            else:
                captions.append(sample_caption(self.names[i], self.rng, self.p.drop_colour, self.p.drop_texture))
        return torch.stack([self.ids(c) for c in captions])


def train_diffusion(unet, text_encoder, latents: torch.Tensor, captions: CaptionSampler, p,
                    generator: torch.Generator, log: list) -> None:
    noise_scheduler = training_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=1e-2)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=p.warmup, num_training_steps=p.steps)
    ema = EMAModel(params, decay=p.ema_decay)
    unet.train()
    text_encoder.train()
    for step in tqdm(range(p.steps), desc="unet+text", mininterval=5):
        idx = torch.randint(len(latents), (p.batch_size,), generator=generator)
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=generator)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (p.batch_size,), generator=generator)
        zt = noise_scheduler.add_noise(z0, noise, t)
        cond = text_encoder(captions(idx))[0]
        pred = unet(zt, t, cond).sample
        loss = F.mse_loss(pred, noise, reduction="none").mean((1, 2, 3))
        if p.min_snr_gamma > 0:  # min-SNR-gamma: down-weights easy low-noise steps (Hang et al. 2023)
            snr = compute_snr(noise_scheduler, t)
            loss = loss * snr.clamp(max=p.min_snr_gamma) / snr
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.step(params)
        if step % 50 == 0 or step == p.steps - 1:
            log.append({"stage": "unet", "step": step, "loss": float(loss), "lr": sched.get_last_lr()[0]})
    ema.copy_to(params)
    unet.eval()
    text_encoder.eval()


def train_base_model(params, world_dir: Path, out: Path) -> tuple[dict, list[dict]]:
    """Train VAE, then UNet + text encoder; write the pipeline to ``out`` atomically."""
    bp = params.base_model
    spec = WorldSpec.from_params(params.world)
    torch.manual_seed(bp.seed)
    generator = torch.Generator().manual_seed(bp.seed)
    images_u8, labels = load_split(world_dir, "train")
    images = to_unit_range(images_u8)
    log: list[dict] = []
    timings: dict[str, float] = {}

    start = time.perf_counter()
    vae = build_vae(bp.vae, spec.image_size)
    train_vae(vae, images, bp.vae, generator, log)
    held = images[-512:]
    psnr = reconstruction_psnr(vae, held)
    latents = encode_latents(vae, images)
    scaling = float(1 / latents.std())
    vae.register_to_config(scaling_factor=scaling)
    latents = latents * scaling
    timings["vae_s"] = time.perf_counter() - start

    start = time.perf_counter()
    tokenizer = build_clip_tokenizer()
    text_encoder = build_text_encoder(bp.text_encoder)
    latent_size = spec.image_size // 2 ** (len(bp.vae.block_channels) - 1)
    unet = build_unet(bp.unet, latent_size, bp.vae.latent_channels, bp.text_encoder.hidden_size)
    captions = CaptionSampler(spec, labels, tokenizer, bp.train, bp.seed)
    train_diffusion(unet, text_encoder, latents, captions, bp.train, generator, log)
    timings["unet_text_s"] = time.perf_counter() - start

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=sampling_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
    summary = {
        "vae_psnr_db": psnr,
        "latent_scaling_factor": scaling,
        "time_s": {k: round(v, 1) for k, v in timings.items()},
        "params_m": {name: round(sum(x.numel() for x in m.parameters()) / 1e6, 3)
                     for name, m in (("vae", vae), ("text_encoder", text_encoder), ("unet", unet))},
        "final_loss": next(r["loss"] for r in reversed(log) if r["stage"] == "unet"),
    }
    return summary, log
