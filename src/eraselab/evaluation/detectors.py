"""Concept detectors: the one question every metric, attack oracle and report asks of an image.

A ``Detector`` answers "does this image show the concept?" (``present``), says exactly what rule it
applies (``spec``: a JSON-able declaration written into every metrics file, so two runs' numbers are
comparable only when their specs are), and, where it can localise, which boxes to blur (``boxes``).

Five detectors, each an entry point in pyproject.toml (``eraselab.detectors``; eraselab.registry): the
toy world's judge CNN, NudeNet with a pinned metric spec (nudity), Q16's learned CLIP prompts (violence and
I2P's other categories), an ImageNet classifier (objects) and zero-shot CLIP over a declared label set
(styles, or any concept named by text). Adding one is a module plus its entry point; a detector whose
params name files gives them a ``missing(key)`` method, which preflight calls.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from eraselab import registry
from eraselab.concepts import Concept
from eraselab.report.censor import censor, censor_boxes

Box = tuple[int, int, int, int]  # x, y, width, height in pixels (NudeNet's convention)

DETECTORS = registry.DETECTORS


class DetectorParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Detector:
    """Interface: ``present`` and ``spec`` are required; ``boxes`` is optional (None: cannot localise)."""

    name: ClassVar[str]
    Params: ClassVar[type[DetectorParams]] = DetectorParams

    @classmethod
    def from_params(cls, params: DetectorParams, **runtime) -> "Detector":
        raise NotImplementedError

    def present(self, images_u8: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x 3 RGB -> bool per image: does it show the concept?"""
        raise NotImplementedError

    def spec(self) -> dict:
        """The declared rule, JSON-able: detector name and version, classes, threshold, preset."""
        raise NotImplementedError

    def boxes(self, images_u8: np.ndarray) -> list[list[Box]] | None:
        """Per image, the regions that made it count; None when the detector cannot localise."""
        return None


def check_images(images: np.ndarray) -> np.ndarray:
    """Refuse anything but uint8 N x H x W x 3 before any model runs."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}".strip()
        raise ValueError(f"detectors take uint8 RGB images shaped N x H x W x 3; got {got}")
    return images


def detector_class(name: str) -> type[Detector]:
    return registry.load("detectors", name)


def validate_detector_params(name: str, params: dict | None) -> DetectorParams:
    """Check a detector's params (names, values, presets) without loading any model."""
    return detector_class(name).Params.model_validate(params or {})


def build_detector(name: str, params: dict | None = None, **runtime) -> Detector:
    """A ready detector; ``runtime`` carries what params cannot (the toy judge and its concept)."""
    cls = detector_class(name)
    return cls.from_params(cls.Params.model_validate(params or {}), **runtime)


def censored(detector: Detector, images: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Images fit for a report grid and which were flagged: blur the flagged boxes where the detector
    localises, else the whole flagged image."""
    flagged = detector.present(images)
    boxes = detector.boxes(images)
    if boxes is None:
        return censor(images, flagged, radius), flagged
    return censor_boxes(images, boxes, radius), flagged


# --- the toy world's judge ------------------------------------------------------------------------------
def concept_present(judge, images: np.ndarray, concept: Concept) -> np.ndarray:
    """Per image: does the judge see ``concept`` (top-1 of its head for the concept's kind)?"""
    if len(images) == 0:
        return np.zeros(0, bool)
    names = judge.classes[concept.kind]
    return judge.predict(images)[concept.kind] == names.index(concept.name)


class JudgeDetector(Detector):
    """The judge CNN's head for the concept's kind says the concept (top-1): the toy world's rule."""

    name = "judge"

    def __init__(self, judge, concept: Concept):
        if concept.kind not in judge.classes or concept.name not in judge.classes[concept.kind]:
            valid = {kind: list(names) for kind, names in judge.classes.items()}
            raise KeyError(f"the judge has no class {concept.kind}/{concept.name}; it knows {valid}")
        self.judge, self.concept = judge, concept

    @classmethod
    def from_params(cls, params: DetectorParams, judge=None, concept: Concept | None = None, **_) -> "JudgeDetector":
        if judge is None or concept is None:
            raise ValueError("the judge detector needs the trained judge and the concept (judge=..., concept=...)")
        return cls(judge, concept)

    def present(self, images_u8: np.ndarray) -> np.ndarray:
        return concept_present(self.judge, check_images(images_u8), self.concept)

    def spec(self) -> dict:
        return {"detector": "judge", "version": "eraselab toy judge CNN", "preset": "toy",
                "kind": self.concept.kind, "classes": [self.concept.name],
                "rule": "top-1 of the judge head for the concept's kind", "threshold": None}

