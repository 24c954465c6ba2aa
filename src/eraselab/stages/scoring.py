"""The evaluators a stage builds from params: the declared CLIP and each concept's detector."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import paths


def scorer(params, spec=None):
    """The declared CLIP (params.evaluation.clip_score, or ``spec``); the toy one is read from models/clip."""
    from eraselab.evaluation.clip_score import load_clip_scorer

    spec = spec or params.evaluation.clip_score
    if spec.model == "toy":
        return load_clip_scorer(spec.model_copy(update={"pretrained": paths.CLIP}), "cpu")
    return load_clip_scorer(spec, params.model.device)


def judge(params, concept: str):
    """The toy judge for a toy-world concept; None for a real one (its prompts carry no labels)."""
    from eraselab.models.judge import load_judge

    return load_judge(Path(paths.JUDGE)) if concept not in params.real_concepts else None


def detector(params, concept):
    """The concept's detector (params.evaluation.detectors; the toy judge by default)."""
    from eraselab.evaluation.detectors import build_detector
    from eraselab.params import detector_choice

    choice = detector_choice(params, concept.name)
    judge_model = judge(params, concept.name) if choice.name == "judge" else None
    return build_detector(choice.name, choice.params, judge=judge_model, concept=concept)
