"""Negative prompt: the concept's words replace the empty prompt in classifier-free guidance, so every
step is pushed away from the concept. Inference-time: the artifact is a config, weights stay untouched."""

from __future__ import annotations

import json

from eraselab.erasure.base import Defended, ErasureMethod, MethodParams


class NegativePromptParams(MethodParams):
    negative_prompt: str | None = None  # None: the concept's own words


class NegativePrompt(ErasureMethod):
    name = "negative_prompt"
    Params = NegativePromptParams
    edits_weights = False

    def erase(self, pipe, concept, params, out, context=None):
        text = params.negative_prompt or concept.text
        (out / "negative_prompt.json").write_text(json.dumps({"negative_prompt": text}))
        return {"negative_prompt": text}

    def load(self, pipe, artifact, config):
        text = json.loads((artifact / "negative_prompt.json").read_text())["negative_prompt"]
        return Defended(pipe, self.name, config, uncond_prompt=text)
