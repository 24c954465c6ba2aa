"""SLD (Schramowski et al., 2023): safe latent diffusion, an inference-time guidance away from a safety
concept. The guidance arithmetic is diffusers' own (``StableDiffusionPipelineSafe.perform_safety_guidance``)
and the presets its ``SafetyConfig``; our sampler supplies per-prompt seeds and embedding inputs, which
that pipeline cannot. Weights stay untouched: the artifact is a config.

The presets' warm-up is counted in steps of a 50-step sampler; we scale it to ours [ours], so warm-up
covers the same share of the trajectory (progress * 50 is compared with the preset's warm-up steps).
"""

from __future__ import annotations

import json
from typing import Literal

import torch
from pydantic import Field, field_validator

from eraselab.erasure.base import Defended, ErasureMethod, MethodParams
from eraselab.generate import Guidance, encode_prompts

REFERENCE_STEPS = 50  # the sampler length SafetyConfig's warm-up steps refer to
SETTINGS = ("sld_warmup_steps", "sld_guidance_scale", "sld_threshold", "sld_momentum_scale", "sld_mom_beta")


def presets() -> dict[str, dict]:
    from diffusers.pipelines.deprecated.stable_diffusion_safe import SafetyConfig

    return {"weak": SafetyConfig.WEAK, "medium": SafetyConfig.MEDIUM, "strong": SafetyConfig.STRONG,
            "max": SafetyConfig.MAX}


class SldParams(MethodParams):
    preset: Literal["weak", "medium", "strong", "max"] = "medium"
    safety_concept: str | None = None  # None: the concept's own words (SLD's default is I2P's list)
    overrides: dict[str, float] = Field(default_factory=dict)  # e.g. {sld_guidance_scale: 500}

    @field_validator("overrides")
    @classmethod
    def _known(cls, v):
        unknown = sorted(set(v) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown SLD setting(s) {unknown}; valid choices: {', '.join(SETTINGS)}")
        return v

    def settings(self) -> dict:
        return {**presets()[self.preset], **self.overrides}


class SafetyGuidance(Guidance):
    def __init__(self, safety: torch.Tensor, settings: dict):
        self.safety, self.settings = safety, settings

    def extra_contexts(self):
        return [self.safety]

    def combine(self, eps_u, eps_c, extras, scale, progress, state):
        from diffusers.pipelines.deprecated.stable_diffusion_safe.pipeline_stable_diffusion_safe import (
            StableDiffusionPipelineSafe,
        )

        s = self.settings
        guidance, state["momentum"] = StableDiffusionPipelineSafe.perform_safety_guidance(
            None, True, state.get("momentum"), eps_c - eps_u, [eps_c, eps_u, extras[0]], progress * REFERENCE_STEPS,
            s["sld_guidance_scale"], s["sld_warmup_steps"], s["sld_threshold"], s["sld_momentum_scale"],
            s["sld_mom_beta"])
        return eps_u + scale * guidance


class SLD(ErasureMethod):
    name = "sld"
    Params = SldParams
    edits_weights = False

    def erase(self, pipe, concept, params, out, context=None):
        settings = params.settings()
        config = {"safety_concept": params.safety_concept or concept.text, "settings": settings}
        (out / "sld.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        return {"safety_concept": config["safety_concept"]}

    def load(self, pipe, artifact, config):
        sld = json.loads((artifact / "sld.json").read_text())
        safety = encode_prompts(pipe, [sld["safety_concept"]])
        return Defended(pipe, self.name, config, guidance=SafetyGuidance(safety, sld["settings"]))
