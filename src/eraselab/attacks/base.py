"""The one interface every red-teaming attack implements, and the machinery attacks share.

Input: the defended generation path (any method's ``Defended``: weight edits and inference-time
defences alike), the undefended pipeline, the concept, seed prompts (each with its seed), params (the
budget) and a ``Checker`` (the success oracle: judge / NudeNet, and CLIP image similarity). Output: one
``AdversarialPrompt`` per seed prompt, as exact hard tokens or soft token embeddings, with its log.

Adversarial prompts live at the token-embedding level, *before* the defended text path: a soft prompt
still passes through whatever the defence does to text (SteerDiff), never around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from eraselab.concepts import Concept
from eraselab.erasure.base import Defended


class AttackParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class AdversarialPrompt:
    seed_prompt: str
    seed: int
    prompt: str  # readable text; soft tokens are shown as <v*>
    token_ids: list[int] | None = None  # exact hard tokens (77), no BPE round trip
    token_embeddings: torch.Tensor | None = None  # soft prompt (77 x d_token)
    log: dict = field(default_factory=dict)  # queries (defended generations), steps, success, ...

    def conditioning(self, defended: Defended) -> torch.Tensor:
        """1 x 77 x d conditioning through the defended text path."""
        if self.token_embeddings is not None:
            with torch.no_grad():
                return defended.encode_token_embeddings(self.token_embeddings[None].to(defended.device))
        if self.token_ids is not None:
            return defended.encode_ids(torch.tensor([self.token_ids]))
        return defended.encode([self.prompt])


@dataclass
class Checker:
    """What an attack may ask of the evaluators: does an image show the concept; image features for
    similarity (CLIP). The toy world wires the judge CNN and the tiny CLIP, the real path NudeNet/CLIP."""

    present: Callable[[np.ndarray], np.ndarray]
    image_features: Callable[[np.ndarray], torch.Tensor]

    def similarity(self, images: np.ndarray, reference: np.ndarray) -> np.ndarray:
        a, b = self.image_features(images), self.image_features(reference)
        return torch.nn.functional.cosine_similarity(a, b, dim=-1).numpy()


class Attack:
    name: ClassVar[str]
    Params: ClassVar[type[AttackParams]] = AttackParams

    def run(self, defended: Defended, undefended, concept: Concept, seeds: list[dict], params: AttackParams,
            checker: Checker | None = None) -> list[AdversarialPrompt]:
        raise NotImplementedError


# --- shared machinery ---------------------------------------------------------------------------------
VocabularyScope = Literal["full", "concept"]


def attack_vocabulary(tokenizer, concept: Concept, scope: VocabularyScope) -> torch.Tensor:
    """Token ids an attack may use. ``full``: the whole vocabulary but the special tokens (the originals).
    ``concept`` [ours, for small worlds]: the tokens of the concept's erase, anchor and retain prompts;
    a tiny model has trained only those rows, and a random search over 49k untrained rows finds nothing
    in a CPU budget. The concept's own words are allowed either way: erasure must hold against them."""
    special = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    if scope == "full":
        ids = [i for i in range(len(tokenizer)) if i not in special]
    else:
        texts = [*concept.erase_prompts, *concept.anchor_prompts, *concept.retain_prompts]
        ids = sorted({i for row in tokenizer(texts).input_ids for i in row} - special)
    return torch.tensor(ids)


def splice(tokenizer, prompt: str, slots: int, mode: Literal["prefix", "only", "insert"], every: int = 3
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (77) with adversarial slots, and the slots' positions.

    ``prefix``: [SOT] slots prompt [EOT] (UnlearnDiffAtk, CCE); ``only``: [SOT] slots [EOT] (P4D-N);
    ``insert``: one slot after every ``every`` prompt tokens (P4D-K; ``slots`` is ignored)."""
    length, bos, eos = tokenizer.model_max_length, tokenizer.bos_token_id, tokenizer.eos_token_id
    words = tokenizer(prompt).input_ids[1:-1] if mode != "only" else []
    SLOT = -1
    if mode == "insert":
        body = []
        for i, tok in enumerate(words):
            body.append(tok)
            if (i + 1) % every == 0:
                body.append(SLOT)
        if SLOT not in body:
            body.append(SLOT)
    else:
        body = [SLOT] * slots + words
    seq = [bos] + body[: length - 2] + [eos]
    seq += [tokenizer.pad_token_id] * (length - len(seq))
    positions = [i for i, tok in enumerate(seq) if tok == SLOT]
    ids = torch.tensor([eos if tok == SLOT else tok for tok in seq])
    return ids, torch.tensor(positions)


def with_slots(base: torch.Tensor, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Token embeddings ``base`` (77 x d) with ``values`` (k x d) written at ``positions``; differentiable."""
    out = base.clone()
    out[positions] = values.to(out)
    return out


def readable(tokenizer, ids: torch.Tensor | list[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True).strip()


@torch.no_grad()
def image_latents(pipe, images: np.ndarray) -> torch.Tensor:
    """uint8 images -> the VAE's scaled latent means (the x_0 a denoising loss noises)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().to(pipe.device) / 127.5 - 1
    return pipe.vae.encode(x.to(pipe.vae.dtype)).latent_dist.mean * pipe.vae.config.scaling_factor


def noised(pipe, latents: torch.Tensor, t: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t of ``latents`` at timestep ``t`` and the noise used (seeded on the CPU, so any device agrees)."""
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    return pipe.scheduler.add_noise(latents, noise, torch.tensor([t] * len(latents))), noise


def already_present(defended: Defended, checker: Checker, seeds: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The seed prompts' own defended images and whether each shows the concept (no attack needed)."""
    images = defended.generate_prompts([r["prompt"] for r in seeds], [r["seed"] for r in seeds])
    return images, checker.present(images)


@dataclass
class TokenSearch:
    """What the white-box token attacks (UnlearnDiffAtk, P4D) set up before their per-prompt loop."""

    vocab: torch.Tensor  # allowed token ids
    table: torch.Tensor  # their embedding rows (len(vocab) x d_token)
    present: np.ndarray  # seed prompts that already show the concept: nothing to attack
    reference: Defended  # the undefended model's generation path: the attack's target
    timesteps: int  # the scheduler's training timesteps

    @classmethod
    def prepare(cls, defended: Defended, undefended, concept: Concept, checker: Checker, seeds: list[dict],
                scope: VocabularyScope) -> "TokenSearch":
        vocab = attack_vocabulary(defended.pipe.tokenizer, concept, scope).to(defended.device)
        _, present = already_present(defended, checker, seeds)
        return cls(vocab, defended.token_embeddings(vocab).detach(), present,
                   Defended(undefended, "none", defended.config), defended.pipe.scheduler.config.num_train_timesteps)


def not_attacked(record: dict) -> AdversarialPrompt:
    """The result for a seed prompt whose own image already shows the concept (counts toward Pre-ASR)."""
    return AdversarialPrompt(record["prompt"], record["seed"], record["prompt"],
                             log={"queries": 1, "steps": 0, "success": True, "attacked": False})
