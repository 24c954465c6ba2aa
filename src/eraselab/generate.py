"""Batched, deterministic sampling from a StableDiffusionPipeline's components.

Inputs are text prompts or prompt embeddings (attacks and SteerDiff produce embeddings); both go through
the same path, so an embedding computed from a prompt gives the identical image. Each image's initial
noise comes from its own seed, so an image does not depend on which other prompts share its batch
(up to ~1e-6 float reassociation). Classifier-free guidance runs the unconditional and conditional
halves in one UNet call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eraselab import _compat  # noqa: F401  (before anything imports torchvision)
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, PNDMScheduler
from PIL import Image
from tqdm import tqdm

from eraselab.errors import MissingInputError
from eraselab.io import atomic_dir

SCHEDULERS = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler, "euler": EulerDiscreteScheduler,
              "pndm": PNDMScheduler}
# Per-scheduler settings SD v1.4 ships with (its PNDM skips the Runge-Kutta warm-up steps).
SCHEDULER_OVERRIDES = {"pndm": {"skip_prk_steps": True}}


@dataclass(frozen=True)
class SamplingConfig:
    steps: int = 20
    guidance: float = 4.0
    scheduler: str = "ddim"
    batch_size: int = 64

    def __post_init__(self):
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; valid: {', '.join(SCHEDULERS)}")


@torch.no_grad()
def encode_prompts(pipe, prompts: list[str], batch: int = 256) -> torch.Tensor:
    """Text -> the text encoder's last hidden states (N x 77 x D), exactly as the UNet receives them."""
    tok = pipe.tokenizer
    out = []
    for i in range(0, len(prompts), batch):
        ids = tok(prompts[i : i + batch], padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(pipe.device)
        out.append(pipe.text_encoder(ids)[0])
    return torch.cat(out) if out else torch.empty(0)


def initial_latents(pipe, seeds: list[int]) -> torch.Tensor:
    """One CPU generator per seed: the same seed gives the same noise on any device and in any batch."""
    unet = pipe.unet.config
    size = unet.sample_size
    shape = (unet.in_channels, size, size)
    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(noise)


class Guidance:
    """Classifier-free guidance: how one step's UNet predictions combine into the noise the scheduler uses.

    Inference-time defences (SLD) subclass it: ``extra_contexts`` adds conditionings to the same batched
    UNet call, ``combine`` sees their predictions. ``progress`` is the step's position in the trajectory
    (0 at pure noise), so step-count-dependent settings scale with the sampler's steps; ``state`` is
    per batch of one sampling run (e.g. SLD's momentum) and empty when a single step is evaluated alone.
    """

    def extra_contexts(self) -> list[torch.Tensor]:
        return []

    def combine(self, eps_u: torch.Tensor, eps_c: torch.Tensor, extras: list[torch.Tensor], scale: float,
                progress: float, state: dict) -> torch.Tensor:
        return eps_u + scale * (eps_c - eps_u)


CFG = Guidance()


@torch.no_grad()
def sample(pipe, cond: torch.Tensor, seeds: list[int], config: SamplingConfig,
           uncond: torch.Tensor | None = None, guidance: Guidance = CFG, progress: bool = True,
           scales: list[float] | None = None) -> np.ndarray:
    """Prompt embeddings (N x L x D) -> uint8 images (N x H x W x 3).

    ``uncond`` defaults to the empty prompt's embedding; a negative prompt is passed here. ``scales``: one
    guidance scale per image (I2P prompts carry their own); None uses ``config.guidance`` for all.
    """
    if len(cond) != len(seeds):
        raise ValueError(f"{len(cond)} embeddings but {len(seeds)} seeds")
    if scales is not None and len(scales) != len(seeds):
        raise ValueError(f"{len(scales)} guidance scales but {len(seeds)} seeds")
    device, dtype = pipe.unet.device, pipe.unet.dtype
    if uncond is None:
        uncond = encode_prompts(pipe, [""])
    uncond = uncond.expand(len(cond), -1, -1) if len(uncond) == 1 else uncond
    extras = [e.to(device, dtype) for e in guidance.extra_contexts()]
    scheduler = SCHEDULERS[config.scheduler].from_config(pipe.scheduler.config,
                                                         **SCHEDULER_OVERRIDES.get(config.scheduler, {}))
    vae_scale = pipe.vae.config.scaling_factor
    images = []
    batches = range(0, len(cond), config.batch_size)
    for start in tqdm(batches, desc="generate", disable=not progress or len(batches) < 2, mininterval=5):
        end = start + config.batch_size
        c = cond[start:end].to(device, dtype)
        u = uncond[start:end].to(device, dtype)
        context = torch.cat([u, c, *(e.expand(len(c), -1, -1) for e in extras)])
        scheduler.set_timesteps(config.steps, device=device)
        latents = initial_latents(pipe, seeds[start:end]).to(device, dtype) * scheduler.init_noise_sigma
        state: dict = {}
        scale = config.guidance if scales is None else torch.tensor(scales[start:end], device=device,
                                                                      dtype=dtype).view(-1, 1, 1, 1)
        for i, t in enumerate(scheduler.timesteps):
            model_in = scheduler.scale_model_input(latents, t).repeat(2 + len(extras), 1, 1, 1)
            eps_u, eps_c, *eps_x = pipe.unet(model_in, t, encoder_hidden_states=context).sample.chunk(2 + len(extras))
            eps = guidance.combine(eps_u, eps_c, eps_x, scale, i / config.steps, state)
            latents = scheduler.step(eps, t, latents).prev_sample
        decoded = pipe.vae.decode(latents / vae_scale).sample
        images.append(((decoded.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
    return torch.cat(images).numpy()


def generate_prompts(pipe, prompts: list[str], seeds: list[int], config: SamplingConfig,
                     negative_prompts: list[str] | None = None, progress: bool = True,
                     scales: list[float] | None = None) -> np.ndarray:
    uncond = encode_prompts(pipe, negative_prompts) if negative_prompts else None
    return sample(pipe, encode_prompts(pipe, prompts), seeds, config, uncond=uncond, progress=progress, scales=scales)


def record_scales(records: list[dict], config: SamplingConfig) -> list[float] | None:
    """Per-prompt guidance where prompt records carry one (I2P's evaluation_guidance), else None: the
    config's scale for all, on the exact code path of a single float (toy images stay bit-identical)."""
    if all(r.get("guidance") is None for r in records):
        return None
    return [float(r["guidance"]) if r.get("guidance") is not None else config.guidance for r in records]


def write_images(out: Path, images: np.ndarray, records: list[dict]) -> None:
    """PNG per image plus manifest.jsonl (one record per image, in order), written atomically."""
    if len(images) != len(records):
        raise ValueError(f"{len(images)} images but {len(records)} manifest records")
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        lines = []
        for i, (image, record) in enumerate(zip(images, records)):
            name = f"images/{i:05d}.png"
            Image.fromarray(image).save(tmp / name, optimize=False)
            lines.append(json.dumps({"index": i, "file": name, **record}, sort_keys=True))
        (tmp / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def read_images(folder: Path) -> tuple[np.ndarray, list[dict]]:
    folder = Path(folder)
    manifest = folder / "manifest.jsonl"
    if not manifest.exists():
        raise MissingInputError(f"{manifest} missing: run `eraselab generate` first")
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line]
    images = np.stack([np.asarray(Image.open(folder / r["file"]).convert("RGB")) for r in records])
    return images, records
