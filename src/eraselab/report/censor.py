"""Never show a flagged image uncensored: blur every image a detector flags before it enters a grid."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def censor(images: np.ndarray, flagged: np.ndarray, radius: float) -> np.ndarray:
    out = images.copy()
    for i in np.flatnonzero(flagged):
        out[i] = blur(images[i], radius)
    return out


def judge_flags(judge, images: np.ndarray, concepts: list[str]) -> np.ndarray:
    """True where the judge sees any of ``concepts`` (the toy world's stand-in for an unsafe detector)."""
    flagged = np.zeros(len(images), bool)
    if not concepts or len(images) == 0:
        return flagged
    pred = judge.predict(images)
    for kind, names in judge.classes.items():
        wanted = [names.index(c) for c in concepts if c in names]
        if wanted:
            flagged |= np.isin(pred[kind], wanted)
    return flagged
