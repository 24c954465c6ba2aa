"""What most stages share: the model they start from, the concept they work on, how they sample."""

from __future__ import annotations

import json
from pathlib import Path

from eraselab.errors import MissingInputError
from eraselab.stages import paths


def model_source(params) -> str:
    """The pipeline later stages start from: the toy base model built here, or a hub id / folder (sd14)."""
    return params.model.hub_id if params.model.source == "hub" else paths.BASE_MODEL


def model_deps(params) -> list[str]:
    """The model as a dependency: the toy base model's folder (a hub model is checked by preflight)."""
    return [paths.BASE_MODEL] if params.model.source == "base_model" else []


def model_params() -> list[str]:
    return ["model"]


def is_toy(params, concept: str) -> bool:
    """A toy-world concept (judged by the judge, with labelled retain prompts), not a real_concepts one."""
    return concept not in params.real_concepts


def toy_clip(params) -> bool:
    """Does any metric use the toy world's CLIP (models/clip, trained by the `clip` stage)?"""
    e = params.evaluation
    return e.clip_score.model == "toy" or (e.fid.feature_extractor == "clip_image" and e.fid.clip.model == "toy")


def clip_deps(params) -> list[str]:
    return [paths.CLIP] if toy_clip(params) else []


def judge_deps(params, concept: str) -> list[str]:
    return [paths.JUDGE] if is_toy(params, concept) else []


def detector_name(params, concept: str) -> str:
    from eraselab.params import detector_choice

    return detector_choice(params, concept).name


def detector_params(params, concept: str) -> list[str]:
    """The params keys a concept's detector reads (its entry, where one is declared)."""
    return [f"evaluation.detectors.{concept}", "evaluation.clip_score"]


def load_concept(c: str):
    """A concept's `Concept`, from the folder `concept_prompts` wrote."""
    from eraselab.concepts import Concept

    path = Path(paths.concept(c)) / "concept.json"
    if not path.exists():
        raise MissingInputError(f"{path} missing: run `eraselab concept-prompts --concept {c}` first")
    return Concept.from_json(json.loads(path.read_text()))


def sampling(params):
    from eraselab.generate import SamplingConfig

    g = params.generate
    return SamplingConfig(steps=g.steps, guidance=g.guidance, scheduler=g.scheduler, batch_size=g.batch_size)


def pipeline(params, fp16: bool | None = None):
    """The undefended pipeline (fp16 as model.fp16 says unless ``fp16`` overrides it)."""
    from eraselab.models import load_pipeline

    m = params.model
    return load_pipeline(model_source(params), m.device, m.fp16 if fp16 is None else fp16, m.attention_slicing)


def gpu(params) -> bool:
    return params.model.device == "cuda"
