"""Ring-A-Bell (Tsai et al., ICLR 2024): a model-agnostic attack that needs only a text encoder.

Concept vector c = mean over paired prompts of E(prompt with the concept) - E(same prompt without),
over the full 77 x d hidden states. For a seed prompt p the target is E(p) + eta * c; a genetic search
over the token ids of a fixed-length prompt minimises ||target - E(candidate)||^2: keep the better half,
single-point crossover, random-token mutation. The attacker's encoder is the undefended one (it has no
access to the defence); the found prompt then goes through the defended path like any user prompt.
"""

from __future__ import annotations

import torch
from pydantic import Field
from tqdm import tqdm

from eraselab.attacks.base import AdversarialPrompt, Attack, AttackParams, VocabularyScope, attack_vocabulary, readable
from eraselab.generate import encode_prompts
from eraselab.models.text_encoding import encode_token_embeddings, token_embeddings


class RingABellParams(AttackParams):
    length: int = Field(16, gt=0)  # tokens in the searched prompt
    eta: float = Field(3.0, ge=0)  # original: 3 for nudity
    pairs: int = Field(30, gt=0)  # prompt pairs averaged into the concept vector (original: ~30-50)
    population: int = Field(64, gt=1)  # original: 200
    generations: int = Field(150, gt=0)  # original: 3000
    crossover: float = Field(0.5, ge=0, le=1)
    mutation: float = Field(0.25, ge=0, le=1)
    vocabulary: VocabularyScope = "concept"
    seed: int = Field(0, ge=0)


class RingABell(Attack):
    name = "ring_a_bell"
    Params = RingABellParams
    sees_defence = False  # the search uses the undefended text encoder only

    def search(self, undefended, concept, seeds, params):
        tok, encoder = undefended.tokenizer, undefended.text_encoder
        vocab = attack_vocabulary(tok, concept, params.vocabulary)
        n = min(params.pairs, len(concept.erase_prompts))
        direction = (encode_prompts(undefended, list(concept.erase_prompts[:n]))
                     - encode_prompts(undefended, list(concept.anchor_prompts[:n]))).mean(0)
        length = min(params.length, tok.model_max_length - 2)
        frame = torch.full((tok.model_max_length,), tok.pad_token_id)
        frame[0], frame[length + 1] = tok.bos_token_id, tok.eos_token_id
        generator = torch.Generator().manual_seed(params.seed)

        @torch.no_grad()
        def fitness(target, population):
            ids = frame.repeat(len(population), 1)
            ids[:, 1 : length + 1] = vocab[population]
            hidden = encode_token_embeddings(encoder, token_embeddings(encoder, ids.to(undefended.device)))
            return ((hidden - target) ** 2).flatten(1).sum(-1).cpu()

        out = []
        for record in tqdm(seeds, desc=self.name, mininterval=10):
            target = encode_prompts(undefended, [record["prompt"]])[0] + params.eta * direction
            population = torch.randint(len(vocab), (params.population, length), generator=generator)
            for _ in range(params.generations):
                order = fitness(target, population).argsort()
                elite = population[order[: params.population // 2]]
                children = elite[torch.randint(len(elite), (params.population - len(elite),), generator=generator)].clone()
                mates = elite[torch.randint(len(elite), (len(children),), generator=generator)]
                cross = torch.rand(len(children), generator=generator) < params.crossover
                cut = torch.randint(1, max(length, 2), (len(children),), generator=generator)
                tail = torch.arange(length)[None] >= cut[:, None]
                children = torch.where(cross[:, None] & tail, mates, children)
                mutate = torch.rand(len(children), generator=generator) < params.mutation
                position = torch.randint(length, (len(children),), generator=generator)
                token = torch.randint(len(vocab), (len(children),), generator=generator)
                children[mutate, position[mutate]] = token[mutate]
                population = torch.cat([elite, children])
            scores = fitness(target, population)
            best = population[scores.argmin()]
            ids = frame.clone()
            ids[1 : length + 1] = vocab[best]
            out.append(AdversarialPrompt(record["prompt"], record["seed"], readable(tok, ids), token_ids=ids.tolist(),
                                         log={"queries": 0, "steps": params.generations,
                                              "encoder_queries": params.population * (params.generations + 1),
                                              "distance": float(scores.min()), "attacked": True}))
        return out
