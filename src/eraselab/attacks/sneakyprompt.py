"""SneakyPrompt (Yang et al., IEEE S&P 2024): a black-box attack that only queries the defended model.

The concept's own words in each seed prompt (its "sensitive tokens") are replaced by ``tokens_per_word``
other tokens each, found by search: every query generates the defended path's image of a candidate
prompt (the seed prompt's seed and guidance), and its reward is whether the image shows the concept
(the checker) and, below that, its CLIP image similarity to the undefended model's image of the seed
prompt (the paper rewards text-image similarity; ours is P4D's image target, since the toy world's CLIP
knows images better than sentences). The attacker never sees gradients, weights or the text path's
internals: a defence that works in text space (SteerDiff's identifier) is bypassed only if its images
let the concept through, which is what "passing the filter" means for a defence that steers instead of
blocking.

``search``: ``rl``, the paper's policy (one categorical distribution per replaced slot, REINFORCE with
the batch mean as baseline), or ``beam``, its beam-search baseline (``beam_width`` 1 is the greedy
one): each round mutates one slot of each kept candidate. Both stop at the first success or when
``queries`` defended generations per seed prompt are spent; the count is in each prompt's log. Seed
prompts whose own defended image already shows the concept are not attacked (Pre-ASR).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from eraselab.attacks.base import (AdversarialPrompt, Attack, AttackParams, TokenSearch, VocabularyScope,
                                   banned_tokens, in_seed_order, readable, seed_scales)


class SneakyPromptParams(AttackParams):
    search: Literal["rl", "beam"] = "rl"
    queries: int = Field(24, gt=0)  # defended generations per seed prompt (the paper caps its search at 60)
    batch: int = Field(8, gt=0)  # candidates queried together, one generation call
    tokens_per_word: int = Field(1, gt=0)  # tokens replacing each sensitive token
    lr: float = Field(2.0, gt=0)  # rl: the policy's step on the advantage
    beam_width: int = Field(2, gt=0)  # beam: candidates kept per round
    vocabulary: VocabularyScope = "concept"
    seed: int = Field(0, ge=0)


def sensitive_layout(tokenizer, prompt: str, sensitive: set[int], per_word: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt's 77 token ids with each sensitive token replaced by ``per_word`` slots, and the slots."""
    words = tokenizer(prompt).input_ids[1:-1]
    body, slots = [], []
    for token in words:
        if token in sensitive:
            slots.extend(range(len(body) + 1, len(body) + 1 + per_word))
            body.extend([tokenizer.eos_token_id] * per_word)
        else:
            body.append(token)
    length = tokenizer.model_max_length
    body = body[: length - 2]
    slots = [s for s in slots if s < length - 1]
    seq = [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]
    seq += [tokenizer.pad_token_id] * (length - len(seq))
    return torch.tensor(seq), torch.tensor(slots, dtype=torch.long)


class SneakyPrompt(Attack):
    name = "sneakyprompt"
    Params = SneakyPromptParams
    needs_image_features = True  # the reward's image similarity

    def run(self, defended, undefended, concept, seeds, params, checker=None, shared=None):
        tok = defended.pipe.tokenizer
        search = TokenSearch.prepare(defended, undefended, concept, checker, seeds, params.vocabulary, shared)
        banned = banned_tokens(tok, search.vocab.cpu(), concept.text.replace(",", " ").split())
        sensitive = {int(i) for i in search.vocab.cpu()[banned]}
        sensitive |= {int(i) for i in tok(concept.text).input_ids[1:-1]}
        vocab = search.vocab.cpu()[~banned]
        if len(vocab) == 0:
            raise ValueError(f"sneakyprompt: every token of the {params.vocabulary!r} vocabulary spells "
                             f"{concept.text!r}; use vocabulary: full")
        todo = [k for k in range(len(seeds)) if not search.present[k]]
        if todo and search.targets is None:
            records = [seeds[k] for k in todo]
            targets = search.reference.generate_prompts([r["prompt"] for r in records], [r["seed"] for r in records],
                                                        scales=seed_scales(search.reference, records))
        else:
            targets = search.targets[todo] if todo else None
        finished = {}
        for i, k in enumerate(todo):
            record = seeds[k]
            ids, slots = sensitive_layout(tok, record["prompt"], sensitive, params.tokens_per_word)
            generator = torch.Generator().manual_seed(params.seed * 1_000_003 + k)
            query = _Query(defended, checker, record, targets[i : i + 1], ids, slots, vocab)
            if len(slots) == 0:  # the prompt never names the concept: nothing to replace
                best = query.best_or(ids)
            elif params.search == "rl":
                best = _policy(query, len(vocab), len(slots), params, generator)
            else:
                best = _beam(query, len(vocab), len(slots), params, generator)
            finished[k] = AdversarialPrompt(record["prompt"], record["seed"], readable(tok, best["ids"]),
                                            token_ids=best["ids"].tolist(),
                                            log={"queries": query.count, "success": best["success"],
                                                 "reward": round(best["reward"], 6), "search": params.search,
                                                 "replaced": len(slots), "attacked": True})
        return in_seed_order(seeds, finished)


class _Query:
    """The black box: candidate slot choices -> the defended path's images -> rewards; counts queries."""

    def __init__(self, defended, checker, record, target, ids, slots, vocab):
        self.defended, self.checker, self.record, self.target = defended, checker, record, target
        self.ids, self.slots, self.vocab = ids, slots, vocab
        self.count, self.best = 0, None

    def __call__(self, choices: torch.Tensor) -> np.ndarray:
        batch = self.ids.repeat(len(choices), 1)
        batch[:, self.slots] = self.vocab[choices]
        guidance = self.record.get("guidance")
        images = self.defended.generate(self.defended.encode_ids(batch), [self.record["seed"]] * len(choices),
                                        scales=None if guidance is None else [float(guidance)] * len(choices))
        self.count += len(choices)
        hits = self.checker.present(images)
        rewards = self.checker.similarity(images, np.repeat(self.target, len(images), 0)) + hits.astype(float)
        i = int(np.argmax(rewards))
        if self.best is None or rewards[i] > self.best["reward"]:
            self.best = {"ids": batch[i].clone(), "reward": float(rewards[i]), "success": bool(hits[i])}
        return rewards

    def best_or(self, ids: torch.Tensor) -> dict:
        return self.best or {"ids": ids, "reward": 0.0, "success": False}


def _rounds(query: _Query, params: SneakyPromptParams):
    """Batch sizes until the budget is spent or a query succeeds."""
    while query.count < params.queries and not (query.best and query.best["success"]):
        yield min(params.batch, params.queries - query.count)


def _policy(query: _Query, n_vocab: int, n_slots: int, params: SneakyPromptParams, generator) -> dict:
    """The paper's search: a categorical policy per slot, sampled and updated by REINFORCE."""
    logits = torch.zeros(n_slots, n_vocab, dtype=torch.float64)
    for size in _rounds(query, params):
        probs = torch.softmax(logits, -1)
        choices = torch.stack([torch.multinomial(probs, 1, generator=generator).squeeze(-1) for _ in range(size)])
        rewards = torch.from_numpy(query(choices)).to(logits)
        advantage = rewards - rewards.mean() if size > 1 else rewards
        onehot = torch.nn.functional.one_hot(choices, n_vocab).to(logits)  # size x slots x vocab
        logits += params.lr * (advantage[:, None, None] * (onehot - probs[None])).mean(0)
    return query.best_or(query.ids)


def _beam(query: _Query, n_vocab: int, n_slots: int, params: SneakyPromptParams, generator) -> dict:
    """The beam-search baseline: keep the ``beam_width`` best candidates, mutate one slot of each per round."""
    beams: list[tuple[float, torch.Tensor]] = []
    for size in _rounds(query, params):
        if not beams:
            choices = torch.randint(n_vocab, (size, n_slots), generator=generator)
        else:
            parents = torch.randint(len(beams), (size,), generator=generator)
            choices = torch.stack([beams[int(p)][1] for p in parents]).clone()
            slot = torch.randint(n_slots, (size,), generator=generator)
            choices[torch.arange(size), slot] = torch.randint(n_vocab, (size,), generator=generator)
        rewards = query(choices)
        pool = beams + [(float(r), c) for r, c in zip(rewards, choices)]
        beams = sorted(pool, key=lambda rc: -rc[0])[: params.beam_width]
    return query.best_or(query.ids)
