"""The one interface every erasure method implements.

``erase`` turns (base pipeline, concept, params) into an artifact folder (modified weights as
safetensors, a LoRA, or an inference-time config) plus ``artifact.json`` naming the method. ``load``
turns base pipeline + artifact into a ``Defended`` generation path. The generator, every attack and every
evaluator use only ``Defended``, never the method.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from eraselab.concepts import Concept
from eraselab.generate import SamplingConfig, encode_prompts, sample


class MethodParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defended:
    """A generation path: text -> conditioning -> images. Inference-time defences override a step."""

    def __init__(self, pipe, method: str):
        self.pipe, self.method = pipe, method

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.pipe, prompts)

    def generate(self, cond: torch.Tensor, seeds: list[int], config: SamplingConfig, progress: bool = False) -> np.ndarray:
        return sample(self.pipe, cond, seeds, config, progress=progress)

    def generate_prompts(self, prompts: list[str], seeds: list[int], config: SamplingConfig, progress: bool = False):
        return self.generate(self.encode(prompts), seeds, config, progress=progress)


class ErasureMethod:
    name: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    edits_weights: ClassVar[bool]

    def erase(self, pipe, concept: Concept, params: MethodParams, out: Path) -> dict:
        """Write the artifact's files into ``out`` (a temp folder); return a log for metrics/plots."""
        raise NotImplementedError

    def load(self, pipe, artifact: Path) -> Defended:
        raise NotImplementedError


def write_artifact_manifest(out: Path, method: str, concept: Concept, params: MethodParams, log: dict) -> None:
    manifest = {"method": method, "concept": concept.name, "params": params.model_dump(mode="json"), "log": log}
    (out / "artifact.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def load_defended(pipe, artifact: Path) -> Defended:
    """Whatever method made ``artifact``, return its defended generation path."""
    from eraselab.registry import method

    path = Path(artifact) / "artifact.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run `eraselab erase` first")
    name = json.loads(path.read_text())["method"]
    return method(name)().load(pipe, Path(artifact))
