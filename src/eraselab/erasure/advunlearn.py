"""AdvUnlearn (Zhang et al., NeurIPS 2024): erasure trained against its own attacker, bi-level.

Each iteration:
1. **Inner (attack)**, after ``warmup`` iterations: a soft prefix of ``attack_tokens`` token embeddings,
   prepended to a concept prompt (from the last iteration's prefix, ``attack_init: latest``), is optimised
   for ``attack_steps`` Adam steps so that the *current* model under the prefixed prompt
   predicts the noise the frozen original predicts under the plain prompt (UnlearnDiffAtk's goal: bring
   the concept back), at x_t on the current model's own trajectory (ESD's sampling).
2. **Outer (unlearning)**: ESD's loss on the adversarial prompt, eps_theta(x_t, [prefix; c]) ->
   eps*(x_t, empty) - eta * (eps*(x_t, c) - eps*(x_t, empty)) with the frozen original as teacher, plus
   ``retain_weight`` times the utility loss: on retain prompts the model must predict what the original
   does.

``module``: what trains. ``text_encoder`` (the paper's recommended variant: the edit moves with the text
encoder and plugs into any UNet), ``text_encoder_first`` (its first ``layers`` transformer layers, the
paper's cheaper variant) or ``unet_xattn`` (the UNet's cross-attention, as ESD-x). The artifact stores only
the trained tensors. Defaults follow the released code's (github.com/OPTML-Group/AdvUnlearn) at toy scale.
[ours] A fresh prefix starts from the embeddings of random tokens of the concept's own prompts (a toy model
has trained only those rows); the inner and outer steps and the retain loss share x_t.
"""

from __future__ import annotations

import copy
import random
from typing import Literal

import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.erasure.base import (Defended, ErasureMethod, MethodParams, load_text_encoder_edit, load_unet_edit,
                                   save_text_encoder_edit, save_unet_edit)
from eraselab.erasure.esd import ESD
from eraselab.generate import SCHEDULERS, encode_prompts, initial_latents
from eraselab.models.text_encoding import encode_token_embeddings, token_embeddings, tokenize


class AdvUnlearnParams(MethodParams):
    module: Literal["text_encoder", "text_encoder_first", "unet_xattn"] = "text_encoder"
    layers: int = Field(1, gt=0)  # text_encoder_first: how many of the first transformer layers train
    iterations: int = Field(100, gt=0)  # paper: 1000
    lr: float = Field(1e-4, gt=0)  # paper: 1e-5 (SD v1.4)
    eta: float = Field(1.0, ge=0)  # ESD's negative guidance
    batch_size: int = Field(2, gt=0)  # concept prompts per iteration (paper: 1)
    retain_weight: float = Field(1.0, ge=0)  # the utility loss's weight (the released code's retain_loss_w)
    retain_batch: int = Field(2, gt=0)  # retain prompts per iteration (released code: 5)
    attack_tokens: int = Field(1, gt=0)  # the inner attack's prefix length (released code: adv_prompt_num 1)
    attack_steps: int = Field(5, gt=0)  # inner Adam steps per iteration (released code: 30)
    attack_lr: float = Field(1e-2, gt=0)  # released code: 1e-3 (SD v1.4's embedding scale)
    attack_init: Literal["latest", "random"] = "latest"  # start each attack from the last prefix, or afresh
    warmup: int = Field(10, ge=0)  # iterations of plain ESD before the attacker joins (released code: 200)
    trajectory_steps: int = Field(20, gt=1)
    trajectory_guidance: float = Field(3.0, ge=1)
    seed: int = Field(0, ge=0)


def trained_names(pipe, params: AdvUnlearnParams) -> tuple[str, list[str]]:
    """(``unet`` | ``text_encoder``, the names of its tensors that train)."""
    if params.module == "unet_xattn":
        return "unet", [n for n, _ in pipe.unet.named_parameters() if ".attn2." in n]
    names = [n for n, _ in pipe.text_encoder.named_parameters()]
    if params.module == "text_encoder_first":
        names = [n for n in names if any(f"encoder.layers.{i}." in f".{n}" for i in range(params.layers))]
    return "text_encoder", names


class AdvUnlearn(ErasureMethod):
    seeded = True  # its result depends on params.seed (grid.train_seeds retrains it with others)
    name = "advunlearn"
    Params = AdvUnlearnParams
    edits_weights = True

    def erase(self, pipe, concept, params: AdvUnlearnParams, out, context=None):
        torch.manual_seed(params.seed)
        rng = random.Random(params.seed)
        generator = torch.Generator().manual_seed(params.seed)
        unet, encoder, tok = pipe.unet, pipe.text_encoder, pipe.tokenizer
        frozen_unet = copy.deepcopy(unet).requires_grad_(False).eval()
        which, names = trained_names(pipe, params)
        module = unet if which == "unet" else encoder
        unet.requires_grad_(False)
        encoder.requires_grad_(False)
        trained = [p for n, p in module.named_parameters() if n in set(names)]
        for p in trained:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(trained, lr=params.lr)
        scheduler = SCHEDULERS["ddim"].from_config(pipe.scheduler.config)
        scheduler.set_timesteps(params.trajectory_steps)
        with torch.no_grad():
            empty = encode_prompts(pipe, [""])  # the original encoder's: the teacher's conditionings
        prompts, retain = list(concept.erase_prompts), list(concept.retain_prompts)
        ids_pool = sorted({int(i) for row in tokenize(tok, prompts + retain)[:, 1:] for i in row}
                          - {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id})
        table = token_embeddings(encoder, torch.tensor(ids_pool, device=unet.device)).detach()
        teacher = {p: c for p, c in zip(prompts + retain, encode_prompts(pipe, prompts + retain).detach())}
        log, latest = [], None
        for step in tqdm(range(params.iterations), desc=f"{self.name} {concept.name}", mininterval=10):
            batch = [prompts[rng.randrange(len(prompts))] for _ in range(params.batch_size)]
            plain = torch.stack([teacher[p] for p in batch])
            uncond = empty.expand(len(batch), -1, -1)
            stop = rng.randrange(params.trajectory_steps)
            seeds = [rng.randrange(2**31) for _ in batch]
            with torch.no_grad():
                current = self._encode(encoder, tok, batch, None)
            latents = ESD._trajectory(unet, scheduler, initial_latents(pipe, seeds).to(unet.device, unet.dtype),
                                      current, uncond, stop, params.trajectory_guidance)
            t = scheduler.timesteps[stop]
            with torch.no_grad():
                eps_empty, eps_concept = frozen_unet(torch.cat([latents, latents]), t,
                                                     encoder_hidden_states=torch.cat([uncond, plain])).sample.chunk(2)
            prefix, attack_loss = None, None
            if step >= params.warmup:
                prefix, attack_loss = self._attack(unet, encoder, tok, batch, latents, t, eps_concept, table, params,
                                                   generator, latest if params.attack_init == "latest" else None)
                latest = prefix
            target = eps_empty - params.eta * (eps_concept - eps_empty)
            cond = self._encode(encoder, tok, batch, prefix)
            loss_erase = torch.nn.functional.mse_loss(unet(latents, t, encoder_hidden_states=cond).sample, target)
            kept = [retain[rng.randrange(len(retain))] for _ in range(params.retain_batch)] if retain else []
            loss_retain = torch.zeros(())
            if kept and params.retain_weight > 0:
                r_latents = latents[torch.arange(len(kept)) % len(latents)]
                with torch.no_grad():
                    r_target = frozen_unet(r_latents, t, encoder_hidden_states=torch.stack([teacher[p] for p in kept])).sample
                r_cond = self._encode(encoder, tok, kept, None)
                loss_retain = torch.nn.functional.mse_loss(unet(r_latents, t, encoder_hidden_states=r_cond).sample,
                                                           r_target)
            loss = loss_erase + params.retain_weight * loss_retain
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log.append({"step": step, "loss": loss.item(), "erase": loss_erase.item(), "retain": loss_retain.item(),
                        "attack": attack_loss})
        module.requires_grad_(False)
        if which == "unet":
            save_unet_edit(unet, names, out)
            save_text_encoder_edit(encoder, [], out)
        else:
            save_unet_edit(unet, [], out)
            save_text_encoder_edit(encoder, names, out)
        return {"loss": log, "module": params.module, "trained_tensors": len(names),
                "trained_parameters": sum(p.numel() for p in trained)}

    @staticmethod
    def _encode(encoder, tok, prompts: list[str], prefix: torch.Tensor | None) -> torch.Tensor:
        """Conditioning of ``prompts`` through the (trained) encoder, each with the soft ``prefix`` (B x k x d)
        after its start token when given; the prompt's tokens shift right, the tail is cut at 77."""
        ids = tokenize(tok, prompts, encoder.device)
        embeds = token_embeddings(encoder, ids)
        if prefix is not None:
            k = prefix.shape[1]
            embeds = torch.cat([embeds[:, :1], prefix.to(embeds), embeds[:, 1:-k]], dim=1)
        return encode_token_embeddings(encoder, embeds)

    def _attack(self, unet, encoder, tok, batch, latents, t, eps_concept, table, params, generator, init=None):
        """The inner step: a soft prefix that makes the current model predict the original's concept noise,
        from ``init`` (the last one) or from random tokens' embeddings."""
        if init is None:
            start = torch.randint(len(table), (len(batch), params.attack_tokens), generator=generator)
            init = table[start.to(table.device)]
        prefix = init.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([prefix], lr=params.attack_lr)
        loss_value = 0.0
        for _ in range(params.attack_steps):
            cond = self._encode(encoder, tok, batch, prefix)
            loss = torch.nn.functional.mse_loss(unet(latents, t, encoder_hidden_states=cond).sample, eps_concept)
            (grad,) = torch.autograd.grad(loss, [prefix])  # the model's own weights get no gradient here
            optimizer.zero_grad(set_to_none=True)
            prefix.grad = grad
            optimizer.step()
            loss_value = loss.item()
        return prefix.detach(), round(loss_value, 6)

    def load(self, pipe, artifact, config):
        return Defended(load_text_encoder_edit(load_unet_edit(pipe, artifact), artifact), self.name, config)
