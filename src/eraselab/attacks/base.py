"""The one interface every red-teaming attack implements.

Input: the defended generation path (any method's ``Defended``), the undefended pipeline, the concept,
seed prompts (each with its seed) and a budget in params. Output: one record per seed prompt with the
adversarial prompt as text and/or conditioning embeddings, plus per-prompt logs (queries, time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from eraselab.concepts import Concept


class AttackParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class AdversarialPrompt:
    seed_prompt: str
    seed: int
    prompt: str | None  # text, when the attack produces hard tokens
    embedding: torch.Tensor | None = None  # conditioning (77 x d), when it produces soft prompts
    log: dict = field(default_factory=dict)


class Attack:
    name: ClassVar[str]
    Params: ClassVar[type[AttackParams]] = AttackParams

    def run(self, defended, undefended, concept: Concept, seeds: list[dict], params: AttackParams,
            judge=None) -> list[AdversarialPrompt]:
        raise NotImplementedError
