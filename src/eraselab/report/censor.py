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


def censor_boxes(images: np.ndarray, boxes_per_image, radius: float) -> np.ndarray:
    """Blur only the flagged regions: per image, boxes as (x, y, width, height) in pixels (NudeNet's form).

    Each box takes its pixels from a blur of the whole image, so its edges blur with their surroundings
    while every pixel outside the boxes stays exactly as it was. Boxes are clipped to the image."""
    if len(boxes_per_image) != len(images):
        raise ValueError(f"censor_boxes: {len(images)} images but boxes for {len(boxes_per_image)}")
    out = images.copy()
    height, width = images.shape[1:3]
    for i, boxes in enumerate(boxes_per_image):
        regions = []
        for x, y, w, h in boxes:
            x0, y0 = max(0, int(x)), max(0, int(y))
            x1, y1 = min(width, int(x) + int(w)), min(height, int(y) + int(h))
            if x1 > x0 and y1 > y0:
                regions.append((x0, y0, x1, y1))
        if not regions:
            continue
        blurred = blur(images[i], radius)
        for x0, y0, x1, y1 in regions:
            out[i, y0:y1, x0:x1] = blurred[y0:y1, x0:x1]
    return out
