"""MMA-Diffusion, text modality (Yang et al., CVPR 2024): adversarial tokens whose text embedding matches
the target prompt's, with the concept's own words banned. It needs only a text encoder.

For each seed prompt (the target), a prompt of ``length`` tokens is optimised by greedy coordinate
gradient: the gradient of the loss (1 - cosine of the pooled embeddings) with respect to a one-hot token
matrix gives each position its ``top_k`` most promising substitutions; ``candidates`` single-token swaps
drawn from them are scored in one batch and the best is kept, if it improves. Tokens whose text contains
a word of the concept's name are banned. The attacker's encoder is the undefended one: the search never
sees the defence, runs once per concept and its prompts are replayed through every defended path.
"""

from __future__ import annotations

import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import (AdversarialPrompt, Attack, AttackParams, VocabularyScope, attack_vocabulary,
                                   banned_tokens, readable)
from eraselab.models.text_encoding import encode_token_embeddings, token_embeddings


class MMADiffusionParams(AttackParams):
    # toy defaults; the paper's (20 tokens, 1000 steps, top-k 256, 512 candidates) are the sd14 profile's
    length: int = Field(16, gt=0)  # adversarial tokens
    steps: int = Field(100, gt=0)  # GCG iterations
    top_k: int = Field(64, gt=0)  # substitutions kept per position
    candidates: int = Field(128, gt=0)  # swaps scored per iteration
    vocabulary: VocabularyScope = "concept"
    seed: int = Field(0, ge=0)


def pooled(encoder, hidden: torch.Tensor, ids: torch.Tensor, eos: int) -> torch.Tensor:
    """CLIP's pooled text embedding: the final hidden state at the end-of-text token."""
    position = (ids == eos).int().argmax(-1)
    return hidden[torch.arange(len(ids)), position]


class MMADiffusion(Attack):
    name = "mma_diffusion"
    Params = MMADiffusionParams
    sees_defence = False  # the search uses the undefended text encoder only

    def search(self, undefended, concept, seeds, params):
        tok, encoder = undefended.tokenizer, undefended.text_encoder
        device = undefended.device
        vocab = attack_vocabulary(tok, concept, params.vocabulary)
        words = concept.text.replace(",", " ").split()
        vocab = vocab[~banned_tokens(tok, vocab, words)]
        if len(vocab) == 0:
            raise ValueError(f"mma_diffusion: every token of the {params.vocabulary!r} vocabulary spells "
                             f"{concept.text!r}; use vocabulary: full")
        table = token_embeddings(encoder, vocab.to(device)).detach()
        length = min(params.length, tok.model_max_length - 2)
        frame = torch.full((tok.model_max_length,), tok.pad_token_id)
        frame[0], frame[length + 1] = tok.bos_token_id, tok.eos_token_id
        frame_embeds = token_embeddings(encoder, frame[None].to(device)).detach()[0]
        generator = torch.Generator().manual_seed(params.seed)
        top_k = min(params.top_k, len(vocab))

        def embed(choice: torch.Tensor) -> torch.Tensor:  # (B x length) vocab indices -> B x d pooled
            ids = frame.repeat(len(choice), 1)
            ids[:, 1 : length + 1] = vocab[choice]
            hidden = encode_token_embeddings(encoder, token_embeddings(encoder, ids.to(device)))
            return pooled(encoder, hidden, ids.to(device), tok.eos_token_id)

        out = []
        for record in tqdm(seeds, desc=self.name, mininterval=10):
            target_ids = tok([record["prompt"]], padding="max_length", max_length=tok.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(device)
            with torch.no_grad():
                target = pooled(encoder, encode_token_embeddings(encoder, token_embeddings(encoder, target_ids)),
                                target_ids, tok.eos_token_id)[0]
            choice = torch.randint(len(vocab), (length,), generator=generator)
            with torch.no_grad():
                best = 1 - torch.cosine_similarity(embed(choice[None]), target[None]).item()
            for _ in range(params.steps):
                onehot = torch.nn.functional.one_hot(choice.to(device), len(vocab)).to(table.dtype).requires_grad_(True)
                embeds = frame_embeds.clone()
                embeds[1 : length + 1] = onehot @ table
                hidden = encode_token_embeddings(encoder, embeds[None])
                ids = frame.clone()
                ids[1 : length + 1] = vocab[choice]
                loss = 1 - torch.cosine_similarity(pooled(encoder, hidden, ids[None].to(device), tok.eos_token_id),
                                                   target[None])
                (grad,) = torch.autograd.grad(loss.sum(), onehot)
                promising = (-grad).topk(top_k, dim=-1).indices.cpu()  # length x top_k
                position = torch.randint(length, (params.candidates,), generator=generator)
                pick = torch.randint(top_k, (params.candidates,), generator=generator)
                batch = choice.repeat(params.candidates, 1)
                batch[torch.arange(params.candidates), position] = promising[position, pick]
                with torch.no_grad():
                    losses = 1 - torch.cosine_similarity(embed(batch), target[None])
                i = int(losses.argmin())
                if losses[i].item() < best:
                    best, choice = losses[i].item(), batch[i]
            ids = frame.clone()
            ids[1 : length + 1] = vocab[choice]
            out.append(AdversarialPrompt(record["prompt"], record["seed"], readable(tok, ids), token_ids=ids.tolist(),
                                         log={"queries": 0, "steps": params.steps,
                                              "encoder_queries": params.steps * (params.candidates + 1) + 1,
                                              "cosine": round(1 - best, 6), "attacked": True}))
        return out
