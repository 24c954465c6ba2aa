"""`none`: the unmodified model, the reference row of every table."""

from __future__ import annotations

from eraselab.erasure.base import Defended, ErasureMethod


class NoErasure(ErasureMethod):
    name = "none"
    edits_weights = False

    def erase(self, pipe, concept, params, out, context=None):
        return {}

    def load(self, pipe, artifact, config):
        return Defended(pipe, self.name, config)
