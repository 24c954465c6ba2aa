"""CCE, circumventing concept erasure (Pham et al., ICLR 2024): textual inversion against the defence.

One new token <v*> is learned (its input embedding only) with the standard denoising loss of the
*defended* path on images of the concept that the undefended model makes (captions "<v*> " + an erase
prompt). The learned token is then prepended to every seed prompt: a soft prompt that still passes
through the defended text path.
"""

from __future__ import annotations

import random

import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import (AdversarialPrompt, Attack, AttackParams, image_latents, noised, splice,
                                   with_slots)
from eraselab.erasure.base import Defended


class CceParams(AttackParams):
    images: int = Field(32, gt=0)  # concept images from the undefended model
    steps: int = Field(300, gt=0)  # original: 5000
    batch_size: int = Field(4, gt=0)  # original: 4 x 4 accumulation
    lr: float = Field(5e-3, gt=0)
    seed: int = Field(0, ge=0)


class CCE(Attack):
    name = "cce"
    Params = CceParams

    def run(self, defended, undefended, concept, seeds, params, checker=None, shared=None):
        tok = defended.pipe.tokenizer
        rng = random.Random(params.seed)
        generator = torch.Generator().manual_seed(params.seed)
        prompts = [concept.erase_prompts[i % len(concept.erase_prompts)] for i in range(params.images)]
        image_seeds = [rng.randrange(2**31) for _ in prompts]
        reference = Defended(undefended, "none", defended.config)
        latents = image_latents(defended.pipe, reference.generate_prompts(prompts, image_seeds))
        spliced = [splice(tok, p, 1, "prefix") for p in prompts]
        bases = torch.stack([defended.token_embeddings(ids).detach() for ids, _ in spliced])
        table = defended.pipe.text_encoder.embeddings.token_embedding.weight.detach()
        token = table.mean(0).float().requires_grad_(True)  # [ours] start from the mean embedding, no word
        optimizer = torch.optim.Adam([token], lr=params.lr)
        total = defended.pipe.scheduler.config.num_train_timesteps
        log = []
        for step in tqdm(range(params.steps), desc=self.name, mininterval=10):
            batch = [rng.randrange(len(prompts)) for _ in range(params.batch_size)]
            embeds = torch.stack([with_slots(bases[i], spliced[i][1], token[None]) for i in batch])
            cond = defended.encode_token_embeddings(embeds)
            t = int(torch.randint(total, (1,), generator=generator))
            x_t, noise = noised(defended.pipe, latents[batch], t, generator)
            loss = torch.nn.functional.mse_loss(defended.noise(x_t, torch.tensor(t), cond), noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.append(loss.item())
        token = token.detach()
        out = []
        for record in seeds:
            ids, slot = splice(tok, record["prompt"], 1, "prefix")
            embeds = with_slots(defended.token_embeddings(ids).detach(), slot, token[None]).cpu()
            out.append(AdversarialPrompt(record["prompt"], record["seed"], "<v*> " + record["prompt"],
                                         token_embeddings=embeds,
                                         log={"queries": 0, "steps": params.steps, "attacked": True,
                                              "final_loss": sum(log[-20:]) / len(log[-20:])}))
        return out
