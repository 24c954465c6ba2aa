"""The toy world's concepts and the phrasings that name them.

Concept kinds mirror the papers' categories: objects (shapes), styles (textures), attributes (colours).
Each concept has several synonyms. A *phrasing* is a sentence frame plus a noun-phrase form; some
(frame, form) pairs are held out of base-model training, so evaluation can ask whether the model, and
later an erasure, generalises to text it never saw. Synonym 0 of each concept is the one erasure
methods train on; the others are held out from erasure (the base model learns them all).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

KINDS = ("shape", "colour", "texture")

SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "shape": {
        "circle": ("circle", "disc", "round shape"),
        "square": ("square", "box", "square shape"),
        "triangle": ("triangle", "three-sided shape", "triangle shape"),
        "star": ("star", "five-pointed star", "star shape"),
        "cross": ("cross", "plus sign", "plus shape"),
    },
    "colour": {
        "red": ("red", "crimson", "scarlet"),
        "green": ("green", "emerald", "grass-green"),
        "blue": ("blue", "azure", "cobalt"),
        "yellow": ("yellow", "golden", "lemon"),
        "purple": ("purple", "violet", "lilac"),
    },
    "texture": {
        "plain": ("plain", "solid", "unpatterned"),
        "striped": ("striped", "stripy", "banded"),
        "dotted": ("dotted", "spotted", "polka-dot"),
    },
}

# Which paper category each kind stands in for.
CATEGORY = {"shape": "object", "colour": "attribute", "texture": "style"}

FRAMES = ("a {np}", "a photo of a {np}", "an image of a {np}", "a drawing of a {np}", "{np} on a dark background")
NP_FORMS = ("adjective", "comma", "pattern")
# (frame index, noun-phrase form) pairs the base model never trains on; every frame and form still
# appears in training, so held-out text is new combinations of known words.
HELDOUT_PHRASINGS = frozenset({(1, "pattern"), (4, "comma"), (3, "adjective")})
PHRASINGS = tuple((f, form) for f in range(len(FRAMES)) for form in NP_FORMS)
TRAIN_PHRASINGS = tuple(p for p in PHRASINGS if p not in HELDOUT_PHRASINGS)
HELDOUT = tuple(p for p in PHRASINGS if p in HELDOUT_PHRASINGS)


def all_concepts() -> dict[str, str]:
    """Map every concept name to its kind."""
    return {name: kind for kind, names in SYNONYMS.items() for name in names}


def noun_phrase(form: str, shape: str, colour: str | None, texture: str | None) -> str:
    head = f"{colour} {shape}" if colour else shape
    if not texture:
        return head
    if form == "adjective":
        return f"{texture} {head}"
    if form == "comma":
        return f"{head}, {texture}"
    if form == "pattern":
        return f"{head} with a {texture} pattern"
    raise ValueError(f"unknown noun-phrase form {form!r}; valid: {', '.join(NP_FORMS)}")


def _articles(text: str) -> str:
    words = text.split(" ")
    for i, word in enumerate(words[:-1]):
        if word == "a" and words[i + 1][:1] in "aeiou":
            words[i] = "an"
    return " ".join(words)


def caption(phrasing: tuple[int, str], shape: str, colour: str | None = None, texture: str | None = None) -> str:
    """Render one caption from surface words (synonyms already chosen)."""
    frame, form = phrasing
    return _articles(FRAMES[frame].format(np=noun_phrase(form, shape, colour, texture)))


@dataclass(frozen=True)
class Labels:
    shape: str
    colour: str
    texture: str


def sample_caption(labels: Labels, rng: random.Random, p_drop_colour: float, p_drop_texture: float,
                   phrasings=TRAIN_PHRASINGS) -> str:
    """A random training caption for an image: random phrasing, synonyms and omitted attributes."""
    shape = rng.choice(SYNONYMS["shape"][labels.shape])
    colour = None if rng.random() < p_drop_colour else rng.choice(SYNONYMS["colour"][labels.colour])
    texture = None if rng.random() < p_drop_texture else rng.choice(SYNONYMS["texture"][labels.texture])
    return caption(rng.choice(phrasings), shape, colour, texture)


def all_training_captions(labels: Labels) -> list[str]:
    """Every caption the base model may see for an image with these labels (for tokenizer caching)."""
    out = []
    for phrasing in TRAIN_PHRASINGS:
        for s in SYNONYMS["shape"][labels.shape]:
            for c in (None, *SYNONYMS["colour"][labels.colour]):
                for t in (None, *SYNONYMS["texture"][labels.texture]):
                    out.append(caption(phrasing, s, c, t))
    return out
