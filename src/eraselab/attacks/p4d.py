"""P4D (Chin et al., ICML 2024): prompting4debugging, white-box on both models.

Free token embeddings are optimised PEZ-style: the forward pass uses each one's nearest vocabulary
token (cosine), the gradient updates the continuous vector. Loss: the defended path's noise prediction
for the adversarial prompt against the undefended model's for the original prompt, at x_t of the
undefended model's image and uniform t; for inference-time defences ``Defended.noise`` reproduces their
guidance inside the loss, as the original does for SLD and negative prompts. Every ``eval_every``
iterations the hard prompt is decoded and generated; the candidate whose image is most CLIP-similar to
the target image is kept. P4D-N: n free tokens alone. P4D-K: the prompt kept, one free token inserted
after every k of its tokens.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import (AdversarialPrompt, Attack, AttackParams, TokenSearch, VocabularyScope, image_latents,
                                   noised, not_attacked, readable, splice, with_slots)


class P4dParams(AttackParams):
    iterations: int = Field(100, gt=0)  # original: 3000
    eval_every: int = Field(20, gt=0)  # original: 50
    lr: float = Field(0.1, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    vocabulary: VocabularyScope = "concept"
    stop_on_success: bool = True  # [ours] end early once a candidate's image shows the concept (CPU budget)
    seed: int = Field(0, ge=0)


def nearest_tokens(embeds: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Index of each row's nearest vocabulary row by cosine similarity (PEZ's projection)."""
    # in fp32: the optimised rows are fp32 even when the model (and its table) is fp16
    sims = torch.nn.functional.normalize(embeds.float(), dim=-1) @ torch.nn.functional.normalize(table.float(), dim=-1).T
    return sims.argmax(-1)


class P4dNParams(P4dParams):
    free_tokens: int = Field(16, gt=0)  # the n free tokens


class P4dKParams(P4dParams):
    every: int = Field(3, gt=0)  # one free token after every k prompt tokens


class P4D(Attack):
    mode: ClassVar[Literal["only", "insert"]]

    def run(self, defended, undefended, concept, seeds, params, checker=None):
        tok = defended.pipe.tokenizer
        search = TokenSearch.prepare(defended, undefended, concept, checker, seeds, params.vocabulary)
        vocab, table, reference, total = search.vocab, search.table, search.reference, search.timesteps
        out = []
        for k, record in enumerate(tqdm(seeds, desc=self.name, mininterval=10)):
            prompt, seed = record["prompt"], record["seed"]
            if search.present[k]:
                out.append(not_attacked(record))
                continue
            generator = torch.Generator().manual_seed(params.seed * 1_000_003 + k)
            target_image = reference.generate_prompts([prompt], [seed])
            target = image_latents(defended.pipe, target_image)
            target_cond = reference.encode([prompt])
            ids, slots = splice(tok, prompt, getattr(params, "free_tokens", 0), self.mode, getattr(params, "every", 3))
            base = defended.token_embeddings(ids).detach()
            start = vocab[torch.randint(len(vocab), (len(slots),), generator=generator).to(vocab.device)]
            free = defended.token_embeddings(start).detach().float().requires_grad_(True)  # fp32 under an fp16 model
            optimizer = torch.optim.AdamW([free], lr=params.lr, weight_decay=params.weight_decay)
            best, best_similarity, queries, success = ids, -2.0, 1, False
            for it in range(1, params.iterations + 1):
                hard = table[nearest_tokens(free.detach(), table)]
                projected = hard + free - free.detach()  # forward with tokens, update the continuous vectors
                cond = defended.encode_token_embeddings(with_slots(base, slots, projected)[None])
                t = int(torch.randint(total, (1,), generator=generator))
                x_t, _ = noised(defended.pipe, target, t, generator)
                with torch.no_grad():
                    goal = reference.noise(x_t, torch.tensor(t), target_cond)
                loss = torch.nn.functional.mse_loss(defended.noise(x_t, torch.tensor(t), cond), goal)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if it % params.eval_every == 0 or it == params.iterations:
                    candidate = ids.clone()
                    candidate[slots] = vocab[nearest_tokens(free.detach(), table)].cpu()
                    image = defended.generate(defended.encode_ids(candidate[None]), [seed])
                    queries += 1
                    similarity = float(checker.similarity(image, target_image)[0])
                    hit = bool(checker.present(image)[0])
                    if similarity > best_similarity or (hit and params.stop_on_success):
                        best, best_similarity, success = candidate, similarity, hit
                    if hit and params.stop_on_success:
                        break
            out.append(AdversarialPrompt(prompt, seed, readable(tok, best), token_ids=best.tolist(),
                                         log={"queries": queries, "steps": it, "success": success, "attacked": True,
                                              "clip_similarity": best_similarity, "final_loss": loss.item()}))
        return out


class P4dN(P4D):
    name, mode, Params = "p4d_n", "only", P4dNParams


class P4dK(P4D):
    name, mode, Params = "p4d_k", "insert", P4dKParams
