"""UnlearnDiffAtk (Zhang et al., ECCV 2024): white-box prompt attack on the defended model.

k adversarial prefix tokens are relaxed one-hot vectors over the vocabulary, initialised uniform and
projected back onto the simplex after each step. Forward: sample a one-hot per slot, gradients pass
straight through to the relaxed vectors. Loss: the *defended* path's denoising loss on the image the
undefended model made for the same prompt and seed. Adam over blocks of steps at evenly spaced
timesteps; after each block the argmax tokens are decoded, the defended model generates from them and
the checker decides; the attack stops at the first success. Seed prompts whose defended image already
shows the concept are not attacked (they count toward Pre-ASR and ASR alike).
"""

from __future__ import annotations

import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import (AdversarialPrompt, Attack, AttackParams, TokenSearch, VocabularyScope, image_latents,
                                   noised, not_attacked, readable, splice, with_slots)


class UnlearnDiffAtkParams(AttackParams):
    tokens: int = Field(5, gt=0)  # adversarial prefix slots
    timesteps: int = Field(10, gt=0)  # evenly spaced blocks (original: 50, t = 10, 30, ..., 990)
    steps_per_timestep: int = Field(10, gt=0)  # original: 40
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    vocabulary: VocabularyScope = "concept"
    seed: int = Field(0, ge=0)


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

    def run(self, defended, undefended, concept, seeds, params, checker=None):
        tok = defended.pipe.tokenizer
        search = TokenSearch.prepare(defended, undefended, concept, checker, seeds, params.vocabulary)
        vocab, table, reference, total = search.vocab, search.table, search.reference, search.timesteps
        timesteps = [int((i + 0.5) * total / params.timesteps) for i in range(params.timesteps)]
        out = []
        for k, record in enumerate(tqdm(seeds, desc=self.name, mininterval=10)):
            prompt, seed = record["prompt"], record["seed"]
            if search.present[k]:
                out.append(not_attacked(record))
                continue
            generator = torch.Generator().manual_seed(params.seed * 1_000_003 + k)
            target = image_latents(defended.pipe, reference.generate_prompts([prompt], [seed]))
            ids, slots = splice(tok, prompt, params.tokens, "prefix")
            base = defended.token_embeddings(ids).detach()
            weights = torch.full((len(slots), len(vocab)), 1.0 / len(vocab), device=defended.device, requires_grad=True)
            optimizer = torch.optim.Adam([weights], lr=params.lr, weight_decay=params.weight_decay)
            queries, steps, success = 1, 0, False
            for t in timesteps:
                for _ in range(params.steps_per_timestep):
                    choice = torch.multinomial(weights.detach().cpu(), 1, generator=generator).squeeze(-1)
                    hard = torch.nn.functional.one_hot(choice, len(vocab)).to(weights)
                    relaxed = hard + weights - weights.detach()  # straight-through
                    cond = defended.encode_token_embeddings(with_slots(base, slots, relaxed.to(table.dtype) @ table)[None])
                    x_t, noise = noised(defended.pipe, target, t, generator)
                    loss = torch.nn.functional.mse_loss(defended.noise(x_t, torch.tensor(t), cond), noise)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    with torch.no_grad():
                        weights.copy_(project_simplex(weights))
                    steps += 1
                ids = ids.clone()
                ids[slots] = vocab[weights.detach().argmax(-1)].cpu()
                image = defended.generate(defended.encode_ids(ids[None]), [seed])
                queries += 1
                if checker.present(image)[0]:
                    success = True
                    break
            out.append(AdversarialPrompt(prompt, seed, readable(tok, ids), token_ids=ids.tolist(),
                                         log={"queries": queries, "steps": steps, "success": success,
                                              "attacked": True, "final_loss": loss.item()}))
        return out
