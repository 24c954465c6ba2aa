"""Attacks on the tiny pipeline: well-formed output, determinism under a seed, budgets respected, and
the shared machinery (simplex projection, token splicing)."""

import numpy as np
import pytest
import torch

from eraselab import registry
from eraselab.attacks.base import Checker, attack_vocabulary, splice
from eraselab.attacks.unlearndiffatk import project_simplex
from eraselab.erasure.base import Defended
from eraselab.generate import SamplingConfig
from eraselab.params import parse_params
from eraselab.prompts.world_prompts import concept_spec
from eraselab.world.dataset import WorldSpec

SPEC = WorldSpec.from_params(parse_params({}).world)
CONCEPT = concept_spec(SPEC, "red", 8, 0)
CONFIG = SamplingConfig(steps=3, guidance=4.0)
SEEDS = [{"prompt": "a red star", "seed": 3}, {"prompt": "a red circle on white", "seed": 4}]
BUDGETS = {
    "no_attack": {},
    "unlearndiffatk": {"tokens": 2, "timesteps": 2, "steps_per_timestep": 2},
    "p4d_n": {"free_tokens": 3, "iterations": 4, "eval_every": 2},
    "p4d_k": {"every": 2, "iterations": 4, "eval_every": 2},
    "ring_a_bell": {"length": 5, "population": 8, "generations": 3, "pairs": 4},
    "cce": {"images": 4, "steps": 3, "batch_size": 2},
}


def never(images):  # a checker that never sees the concept: every attack spends its whole budget
    return np.zeros(len(images), bool)


CHECKER = Checker(present=never, image_features=lambda images: torch.from_numpy(images.reshape(len(images), -1)).float())


def run(tiny_pipeline, name, checker=CHECKER):
    attack = registry.attack(name)()
    defended = Defended(tiny_pipeline, "none", CONFIG)
    return attack.run(defended, tiny_pipeline, CONCEPT, SEEDS, attack.Params.model_validate(BUDGETS[name]), checker)


@pytest.mark.parametrize("name", sorted(registry.ATTACKS))
def test_attack_output_is_well_formed_deterministic_and_in_budget(tiny_pipeline, name):
    first, second = run(tiny_pipeline, name), run(tiny_pipeline, name)
    assert [(a.seed_prompt, a.seed) for a in first] == [(r["prompt"], r["seed"]) for r in SEEDS]
    defended = Defended(tiny_pipeline, "none", CONFIG)
    for a, b in zip(first, second):
        assert a.prompt == b.prompt and a.token_ids == b.token_ids
        if a.token_embeddings is not None:
            assert a.token_embeddings.shape == (77, tiny_pipeline.text_encoder.config.hidden_size)
            assert torch.equal(a.token_embeddings, b.token_embeddings)
        if a.token_ids is not None:
            assert len(a.token_ids) == 77 and a.token_ids[0] == tiny_pipeline.tokenizer.bos_token_id
        assert a.conditioning(defended).shape == (1, 77, tiny_pipeline.text_encoder.config.hidden_size)
    budget = BUDGETS[name]
    for a in first:
        steps, queries = a.log.get("steps", 0), a.log["queries"]
        if name == "unlearndiffatk":
            assert steps == budget["timesteps"] * budget["steps_per_timestep"] and queries == 1 + budget["timesteps"]
        elif name.startswith("p4d"):
            assert steps == budget["iterations"] and queries == 1 + budget["iterations"] // budget["eval_every"]
        elif name == "ring_a_bell":
            assert a.log["encoder_queries"] == budget["population"] * (budget["generations"] + 1)
        elif name == "cce":
            assert steps == budget["steps"] and a.prompt.startswith("<v*> ")


def test_unlearndiffatk_stops_at_first_success_and_skips_present_prompts(tiny_pipeline):
    always = Checker(present=lambda images: np.ones(len(images), bool), image_features=CHECKER.image_features)
    out = run(tiny_pipeline, "unlearndiffatk", always)
    assert all(a.log["attacked"] is False and a.prompt == a.seed_prompt for a in out)


def test_project_simplex():
    w = torch.tensor([[0.5, 0.9, -0.2], [0.2, 0.2, 0.2], [3.0, 0.0, 0.0]])
    p = project_simplex(w)
    assert torch.allclose(p.sum(-1), torch.ones(3)) and (p >= 0).all()
    assert torch.allclose(p[1], torch.full((3,), 1 / 3)) and torch.allclose(p[2], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(p[0], torch.tensor([0.3, 0.7, 0.0]))


def test_splice_places_slots(tiny_pipeline):
    tok = tiny_pipeline.tokenizer
    words = tok("a red star").input_ids[1:-1]
    ids, slots = splice(tok, "a red star", 2, "prefix")
    assert slots.tolist() == [1, 2] and ids[3 : 3 + len(words)].tolist() == words
    ids, slots = splice(tok, "", 4, "only")
    assert slots.tolist() == [1, 2, 3, 4] and ids[5] == tok.eos_token_id
    ids, slots = splice(tok, "a red star", 0, "insert", every=1)
    assert len(slots) == len(words) and ids[slots[0] - 1] == words[0]


def test_concept_vocabulary_is_the_concepts_tokens(tiny_pipeline):
    tok = tiny_pipeline.tokenizer
    vocab = set(attack_vocabulary(tok, CONCEPT, "concept").tolist())
    assert set(tok("red").input_ids[1:-1]) <= vocab and tok.eos_token_id not in vocab
    assert len(attack_vocabulary(tok, CONCEPT, "full")) == len(tok) - len({tok.bos_token_id, tok.eos_token_id,
                                                                           tok.pad_token_id})
