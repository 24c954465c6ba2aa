"""UnlearnDiffAtk (Zhang et al., ECCV 2024): white-box prompt attack on the defended model.

k adversarial prefix tokens are relaxed one-hot vectors over the vocabulary, initialised uniform and
projected back onto the simplex after each step. Forward: sample a one-hot per slot, gradients pass
straight through to the relaxed vectors. Loss: the *defended* path's denoising loss on the image the
undefended model made for the same prompt and seed. Adam over blocks of steps at evenly spaced
timesteps; after each block the argmax tokens are decoded, the defended model generates from them and
the checker decides; the attack stops at the first success. Seed prompts whose defended image already
shows the concept are not attacked (they count toward Pre-ASR and ASR alike). All seed prompts still
being attacked share one batch per step (``SeedRun``: each keeps its own RNG stream, relaxed vectors and
Adam state; a successful one leaves).
"""

from __future__ import annotations

from functools import partial

import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import (AdversarialPrompt, Attack, AttackParams, TokenSearch, VocabularyScope, count_step,
                                   encode_runs, generate_candidates, in_seed_order, noised_runs, per_run_mse, readable,
                                   seed_chunks, splice)


class UnlearnDiffAtkParams(AttackParams):
    tokens: int = Field(5, gt=0)  # adversarial prefix slots
    timesteps: int = Field(10, gt=0)  # evenly spaced blocks (original: 50, t = 10, 30, ..., 990)
    steps_per_timestep: int = Field(10, gt=0)  # original: 40
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    vocabulary: VocabularyScope = "concept"
    seed: int = Field(0, ge=0)
    seed_batch: int | None = Field(None, gt=0)  # [ours] seeds optimised together (GPU memory); None = all


def project_simplex(w: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row onto the probability simplex (Duchi et al., 2008)."""
    u, _ = torch.sort(w, dim=-1, descending=True)
    cumulative = u.cumsum(-1) - 1
    index = torch.arange(1, w.shape[-1] + 1, device=w.device, dtype=w.dtype)
    rho = ((u - cumulative / index) > 0).to(w.dtype).cumsum(-1).argmax(-1, keepdim=True)
    theta = cumulative.gather(-1, rho) / (rho + 1).to(w.dtype)
    return (w - theta).clamp(min=0)


class UnlearnDiffAtk(Attack):
    name = "unlearndiffatk"
    Params = UnlearnDiffAtkParams

    def run(self, defended, undefended, concept, seeds, params, checker=None, shared=None):
        tok = defended.pipe.tokenizer
        search = TokenSearch.prepare(defended, undefended, concept, checker, seeds, params.vocabulary, shared)
        total = search.timesteps
        timesteps = [int((i + 0.5) * total / params.timesteps) for i in range(params.timesteps)]
        runs = search.runs(defended, seeds, params.seed, partial(splice, tok, slots=params.tokens, mode="prefix"))
        if not runs:
            return in_seed_order(seeds, {})
        for chunk in seed_chunks(runs, params.seed_batch):
            self._optimise(chunk, defended, search, timesteps, checker, params)
        return in_seed_order(seeds, {r.k: AdversarialPrompt(r.prompt, r.seed, readable(tok, r.ids),
                                                            token_ids=r.ids.tolist(), log=r.log()) for r in runs})

    def _optimise(self, runs, defended, search: TokenSearch, timesteps: list[int], checker, params) -> None:
        """Simplex-relaxed token search on a batch of seeds, block by block, until each succeeds."""
        vocab, table = search.vocab, search.table
        for run in runs:
            run.param = torch.full((len(run.slots), len(vocab)), 1.0 / len(vocab), device=defended.device,
                                   requires_grad=True)
        optimizer = torch.optim.Adam([r.param for r in runs], lr=params.lr, weight_decay=params.weight_decay)
        active = runs
        for t in tqdm(timesteps, desc=self.name, mininterval=10):
            for _ in range(params.steps_per_timestep):
                relaxed = []
                for r in active:
                    choice = torch.multinomial(r.param.detach().cpu(), 1, generator=r.generator).squeeze(-1)
                    hard = torch.nn.functional.one_hot(choice, len(vocab)).to(r.param)
                    relaxed.append(hard + r.param - r.param.detach())  # straight-through
                cond = encode_runs(defended, active, [w.to(table.dtype) @ table for w in relaxed])
                x_t, noise = noised_runs(defended.pipe, active, [t] * len(active))
                losses = per_run_mse(defended.noise(x_t, torch.tensor(t), cond), noise)
                optimizer.zero_grad(set_to_none=True)  # finished runs' weights keep grad None: Adam skips them
                losses.sum().backward()
                optimizer.step()
                with torch.no_grad():
                    for r in active:
                        r.param.copy_(project_simplex(r.param))
                count_step(active, losses)
            for r in active:  # the block's candidate: each slot's argmax token
                r.ids[r.slots] = vocab[r.param.detach().argmax(-1)].cpu()
            images = generate_candidates(defended, active, [r.ids for r in active])
            for r, hit in zip(active, checker.present(images)):
                r.success = r.done = bool(hit)
            active = [r for r in active if not r.done]
            if not active:
                return
