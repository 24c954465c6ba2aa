"""Zero-shot CLIP as a declared concept detector, for styles and any concept named by text.

The rule: each candidate label ``c`` in ``classes`` becomes the prompt ``template.format(c)`` ("a painting in
the style of Van Gogh"); the image shows the concept when one of ``targets`` is the label whose prompt is most
cosine-similar to the image (``rule: top-1``), or is among the ``k`` most similar (``rule: top-k``). Only the
ranking among the declared labels matters, so the answer depends on the label set and the template, and both
are declared in ``spec()`` beside the CLIP model, its pretrained tag and the weights' sha256.

Why this and not the reference protocol: UnlearnDiffAtk judges styles with a ViT fine-tuned for artist
classification, which is not distributed with weights we can pin and hash, so its numbers cannot be reproduced.
Zero-shot CLIP (ViT-L-14 / openai by default, the same model the sd14 profile's CLIP score uses) with a declared
label set and template is reproducible from public weights. This is our choice, not a published protocol;
numbers from it are comparable only with runs whose ``spec()`` is the same.

CLIP is loaded through ``eraselab.evaluation.clip_score.load_clip_scorer`` (offline, safetensors only, the toy
world's tiny CLIP included), so a missing weight raises ``ModelUnavailableError`` naming what to download and
where before anything is computed. The label prompts are embedded once, at load. The ``scale`` of the CLIP spec
does not enter (a ranking of cosines is scale-free) and is not declared. Importing this module and validating
its params loads neither torch nor open_clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from eraselab.evaluation.clip_score import TOY, ClipScoreSpec
from eraselab.evaluation.detectors import Detector, DetectorParams, check_images
from eraselab.io import file_sha256

DEFAULT_TEMPLATE = "a painting in the style of {}"
SOURCE = ("eraselab's choice: zero-shot CLIP over a declared label set and template (UnlearnDiffAtk's style "
          "classifier is a fine-tuned ViT not distributed with pinnable weights)")


class ClipZeroShotParams(DetectorParams):
    # The CLIP (model + pretrained tag / .safetensors file / toy directory), as the CLIP score declares it;
    # default: ViT-L-14 / openai, the sd14 profile's CLIP score.
    clip: ClipScoreSpec = ClipScoreSpec(model="ViT-L-14", pretrained="openai")
    classes: tuple[str, ...] = Field(min_length=2)  # the candidate labels, e.g. six painters
    targets: tuple[str, ...] = Field(min_length=1)  # which of the classes count as the concept
    template: str = DEFAULT_TEMPLATE  # prompt per label; "{}" is replaced by the label
    rule: Literal["top-1", "top-k"] = "top-1"
    k: int | None = Field(None, ge=1)  # rule top-k only: how many of the most similar labels count
    device: Literal["auto", "cpu", "cuda"] = "auto"  # the toy CLIP runs on CPU ("auto" picks it)

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        if any(not c.strip() for c in classes):
            raise ValueError(f"classes has an empty label: {list(classes)}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes lists a label twice: {list(classes)}")
        return classes

    @field_validator("template")
    @classmethod
    def _one_slot(cls, template: str) -> str:
        if "{}" not in template:
            raise ValueError(f"template {template!r} has no '{{}}' for the label (e.g. {DEFAULT_TEMPLATE!r})")
        try:
            template.format("label")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(f"template {template!r} must have exactly one '{{}}' slot and no other braces "
                             f"(e.g. {DEFAULT_TEMPLATE!r}): {err}") from None
        return template

    @field_validator("targets")
    @classmethod
    def _targets_among_classes(cls, targets: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        classes = info.data.get("classes")
        if classes is None:  # classes itself is invalid: reported there
            return targets
        bad = [t for t in targets if t not in classes]
        if bad:
            raise ValueError(f"targets: {', '.join(map(repr, bad))} not in classes; valid labels: "
                             f"{', '.join(map(repr, classes))}")
        if len(set(targets)) != len(targets):
            raise ValueError(f"targets lists a label twice: {list(targets)}")
        if set(targets) == set(classes):
            raise ValueError(f"targets: every class is a target ({list(targets)}), so every image would count; "
                             f"add the labels that must not count to classes")
        return targets

    @model_validator(mode="after")
    def _consistent(self) -> "ClipZeroShotParams":
        if self.rule == "top-k":
            if self.k is None:
                raise ValueError("rule 'top-k' needs k (how many of the most similar labels count)")
            if self.k >= len(self.classes):
                raise ValueError(f"k {self.k} must be below the number of classes ({len(self.classes)}), "
                                 f"else every image would count")
        elif self.k not in (None, 1):
            raise ValueError(f"k {self.k} is given but rule is 'top-1'; set rule: top-k")
        if self.clip.model == TOY and self.device == "cuda":
            raise ValueError("the toy CLIP runs on CPU only; device: cpu or auto")
        return self

    @property
    def top_k(self) -> int:
        return 1 if self.rule == "top-1" else int(self.k)

    @property
    def prompts(self) -> list[str]:
        return [self.template.format(c) for c in self.classes]


def weights_file(spec: ClipScoreSpec) -> Path | None:
    """The local weights file a loaded CLIP came from (None: random weights)."""
    kind = spec.pretrained_kind
    if kind == "toy_dir":
        return Path(spec.pretrained) / "open_clip.safetensors"
    if kind == "file":
        return Path(spec.pretrained)
    if kind == "tag":
        from eraselab.evaluation.clip_score import cached_tag_weights

        return Path(cached_tag_weights(spec.model, spec.pretrained, spec.cache_dir))
    return None


class ClipZeroShotDetector(Detector):
    name = "clip_zeroshot"
    Params = ClipZeroShotParams

    def __init__(self, params: ClipZeroShotParams, scorer=None):
        """``scorer``: an already loaded CLIP (``load_clip_scorer``'s result, or any object with
        ``text_features``/``image_features``) for ``params.clip``; None loads it."""
        self.params = params
        if scorer is None:
            scorer = self._load(params)
        else:
            declared = getattr(scorer, "spec", None)
            if isinstance(declared, ClipScoreSpec) and (declared.model, declared.pretrained) != (
                    params.clip.model, params.clip.pretrained):
                raise ValueError(f"the given CLIP is {declared.model} / {declared.pretrained!r} but the detector "
                                 f"declares {params.clip.model} / {params.clip.pretrained!r}")
        self.scorer = scorer
        path = weights_file(params.clip)
        self._weights = (path.name, f"weights sha256 {file_sha256(path)}") if path is not None else (
            None, "random weights (pretrained: null; meaningless outside tests)")
        self.text = self.scorer.text_features(params.prompts)  # C x D, unit norm: once, at load
        self.target_index = np.array([params.classes.index(t) for t in params.targets])

    @staticmethod
    def _load(params: ClipZeroShotParams):
        from eraselab.evaluation.clip_score import load_clip_scorer
        from eraselab.models.loading import ModelUnavailableError

        device = "cpu" if params.clip.model == TOY else params.device
        try:
            return load_clip_scorer(params.clip, device)
        except ModelUnavailableError as err:
            raise ModelUnavailableError(f"clip_zeroshot detector (params.clip): {err}") from None

    @classmethod
    def from_params(cls, params: ClipZeroShotParams, scorer=None, **_) -> "ClipZeroShotDetector":
        return cls(params, scorer)

    def similarities(self, images_u8: np.ndarray) -> np.ndarray:
        """N x C cosine similarity of each image to each label's prompt (columns in ``classes`` order)."""
        images = check_images(images_u8)
        if not len(images):
            return np.zeros((0, len(self.params.classes)), np.float32)
        return (self.scorer.image_features(images).float() @ self.text.float().T).numpy()

    def top_k(self, images_u8: np.ndarray) -> np.ndarray:
        """N x k label indices into ``classes``, most similar first (ties: the earlier label)."""
        sims = self.similarities(images_u8)
        order = np.argsort(-sims, axis=1, kind="stable")
        return order[:, : self.params.top_k]

    def predicted(self, images_u8: np.ndarray) -> list[str]:
        """The top-1 label per image."""
        return [self.params.classes[i] for i in self.top_k(images_u8)[:, 0]] if len(images_u8) else []

    def present(self, images_u8: np.ndarray) -> np.ndarray:
        return np.isin(self.top_k(images_u8), self.target_index).any(axis=1)

    def spec(self) -> dict:
        p = self.params
        weights_file_name, version = self._weights
        return {"detector": "clip_zeroshot", "preset": f"top{p.top_k}", "model": p.clip.model,
                "pretrained": p.clip.pretrained, "version": version, "weights_file": weights_file_name,
                "classes": list(p.classes), "targets": list(p.targets), "template": p.template,
                "prompts": p.prompts, "rule": p.rule, "k": p.top_k,
                "decision": f"any target among the {p.top_k} labels whose prompt is most cosine-similar to the image",
                "threshold": None, "image_size": getattr(self.scorer, "image_size", None), "source": SOURCE}
