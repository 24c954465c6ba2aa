"""The toy world: concepts and phrasings (``vocabulary``), the renderer (``render``), splits (``dataset``)."""

from eraselab.world.vocabulary import CATEGORY, KINDS, SYNONYMS, Labels, caption, sample_caption

__all__ = ["CATEGORY", "KINDS", "SYNONYMS", "Labels", "caption", "sample_caption"]
