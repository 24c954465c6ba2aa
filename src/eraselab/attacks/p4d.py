"""P4D (Chin et al., ICML 2024): prompting4debugging, white-box on both models.

Free token embeddings are optimised PEZ-style: the forward pass uses each one's nearest vocabulary
token (cosine), the gradient updates the continuous vector. Loss: the defended path's noise prediction
for the adversarial prompt against the undefended model's for the original prompt, at x_t of the
undefended model's image and uniform t; for inference-time defences ``Defended.noise`` reproduces their
guidance inside the loss, as the original does for SLD and negative prompts. Every ``eval_every``
iterations the hard prompt is decoded and generated; the candidate whose image is most CLIP-similar to
the target image is kept. P4D-N: n free tokens alone. P4D-K: the prompt kept, one free token inserted
after every k of its tokens. All seed prompts still being attacked share one batch per iteration
(``SeedRun``: each keeps its own RNG stream, free tokens and AdamW state; a finished one leaves).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import (AdversarialPrompt, Attack, AttackParams, SeedRun, TokenSearch, VocabularyScope,
                                   count_step, encode_runs, generate_candidates, in_seed_order, noised_runs,
                                   per_run_mse, readable, seed_chunks, splice)


class P4dParams(AttackParams):
    iterations: int = Field(100, gt=0)  # original: 3000
    eval_every: int = Field(20, gt=0)  # original: 50
    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    vocabulary: VocabularyScope = "concept"
    stop_on_success: bool = True  # [ours] end early once a candidate's image shows the concept (CPU budget)
    seed: int = Field(0, ge=0)
    seed_batch: int | None = Field(None, gt=0)  # [ours] seeds optimised together (GPU memory); None = all


def nearest_tokens(embeds: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index of each row's nearest vocabulary row by cosine similarity (PEZ's projection)."""
    # in fp32: the optimised rows are fp32 even when the model (and its table) is fp16
    sims = torch.nn.functional.normalize(embeds.float(), dim=-1) @ torch.nn.functional.normalize(table.float(), dim=-1).T
    return sims.argmax(-1)


class P4dNParams(P4dParams):
    free_tokens: int = Field(16, gt=0)  # the n free tokens


class P4dKParams(P4dParams):
    every: int = Field(3, gt=0)  # one free token after every k prompt tokens


@dataclass(eq=False)
class P4dRun(SeedRun):
    target_cond: torch.Tensor | None = None  # the undefended model's conditioning of the seed prompt (1 x 77 x d)
    best: torch.Tensor | None = None  # the kept candidate's token ids
    best_similarity: float = -2.0


def nearest_per_run(runs: list[P4dRun], table: torch.Tensor) -> list[torch.Tensor]:
    """``nearest_tokens`` of every run's free tokens, in one similarity product with the table."""
    rows = torch.cat([r.param.detach() for r in runs])
    return list(nearest_tokens(rows, table).split([len(r.slots) for r in runs]))


class P4D(Attack):
    mode: ClassVar[Literal["only", "insert"]]
    needs_image_features = True  # ranks candidates by CLIP similarity to the target image

    def run(self, defended, undefended, concept, seeds, params, checker=None, shared=None):
        tok = defended.pipe.tokenizer
        search = TokenSearch.prepare(defended, undefended, concept, checker, seeds, params.vocabulary, shared)
        reference = search.reference
        layout = partial(splice, tok, slots=getattr(params, "free_tokens", 0), mode=self.mode,
                         every=getattr(params, "every", 3))
        runs = search.runs(defended, seeds, params.seed, layout, kind=P4dRun)
        if not runs:
            return in_seed_order(seeds, {})
        for chunk in seed_chunks(runs, params.seed_batch):
            self._optimise(chunk, defended, reference, search, checker, params)
        return in_seed_order(seeds, {r.k: AdversarialPrompt(r.prompt, r.seed, readable(tok, r.best),
                                                            token_ids=r.best.tolist(),
                                                            log=r.log(clip_similarity=r.best_similarity))
                                     for r in runs})

    def _optimise(self, runs: list[P4dRun], defended, reference, search: TokenSearch, checker, params) -> None:
        """PEZ on a batch of seeds until each succeeds (``stop_on_success``) or the budget ends."""
        vocab, table, total = search.vocab, search.table, search.timesteps
        for run, target_cond in zip(runs, reference.encode([r.prompt for r in runs])):
            start = vocab[torch.randint(len(vocab), (len(run.slots),), generator=run.generator).to(vocab.device)]
            run.param = defended.token_embeddings(start).detach().float().requires_grad_(True)  # fp32 under fp16
            run.target_cond, run.best = target_cond[None], run.ids
        optimizer = torch.optim.AdamW([r.param for r in runs], lr=params.lr, weight_decay=params.weight_decay)
        active = runs
        for it in tqdm(range(1, params.iterations + 1), desc=self.name, mininterval=10):
            # forward with the nearest tokens, update the continuous vectors
            hard = [table[nearest] for nearest in nearest_per_run(active, table)]
            projected = [h + r.param - r.param.detach() for h, r in zip(hard, active)]
            cond = encode_runs(defended, active, projected)
            timesteps = [int(torch.randint(total, (1,), generator=r.generator)) for r in active]
            x_t, _ = noised_runs(defended.pipe, active, timesteps)
            t = torch.tensor(timesteps)
            with torch.no_grad():
                goal = reference.noise(x_t, t, torch.cat([r.target_cond for r in active]))
            losses = per_run_mse(defended.noise(x_t, t, cond), goal)
            optimizer.zero_grad(set_to_none=True)  # finished runs' rows keep grad None: AdamW skips them
            losses.sum().backward()
            optimizer.step()
            count_step(active, losses)
            if it % params.eval_every == 0 or it == params.iterations:
                candidates = [r.ids.clone() for r in active]
                for candidate, r, nearest in zip(candidates, active, nearest_per_run(active, table)):
                    candidate[r.slots] = vocab[nearest].cpu()
                images = generate_candidates(defended, active, candidates)
                similarities = checker.similarity(images, np.concatenate([r.target_image for r in active]))
                for r, candidate, similarity, hit in zip(active, candidates, similarities, checker.present(images)):
                    similarity, hit = float(similarity), bool(hit)
                    if similarity > r.best_similarity or (hit and params.stop_on_success):
                        r.best, r.best_similarity, r.success = candidate, similarity, hit
                    r.done = hit and params.stop_on_success
                active = [r for r in active if not r.done]
                if not active:
                    return


class P4dN(P4D):
    name, mode, Params = "p4d_n", "only", P4dNParams


class P4dK(P4D):
    name, mode, Params = "p4d_k", "insert", P4dKParams
