"""A concept to erase, as methods and attacks see it: phrases to erase, anchors, prompts to retain.

Methods and attacks never know which world they are in; the toy world builds these from its vocabulary
(`eraselab.prompts.world_prompts.concept_spec`), the real path from params.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Concept:
    name: str
    kind: str  # toy: shape / colour / texture; real: e.g. nudity, object, style
    text: str  # the words naming the concept (negative prompt, SLD's safety concept)
    erase_prompts: tuple[str, ...]  # what a method may train on (training phrasings)
    anchor_prompts: tuple[str, ...]  # erase_prompts[i] with the concept taken out (same order)
    retain_prompts: tuple[str, ...]  # prompts that must keep working

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Concept":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
