"""`no_attack`: the seed prompts as they are; the reference row (its ASR is the Pre-ASR)."""

from __future__ import annotations

from eraselab.attacks.base import AdversarialPrompt, Attack


class NoAttack(Attack):
    name = "no_attack"
    sees_defence = False

    def search(self, undefended, concept, seeds, params):
        return [AdversarialPrompt(r["prompt"], r["seed"], r["prompt"], log={"queries": 0, "attacked": False})
                for r in seeds]
