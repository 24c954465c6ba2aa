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
    "mma_diffusion": {"length": 4, "steps": 3, "top_k": 8, "candidates": 6},
    "cce": {"images": 4, "steps": 3, "batch_size": 2},
    "sneakyprompt": {"queries": 6, "batch": 4},
}


def never(images):  # a checker that never sees the concept: every attack spends its whole budget
    return np.zeros(len(images), bool)


CHECKER = Checker(present=never, image_features=lambda images: torch.from_numpy(images.reshape(len(images), -1)).float())


def run(tiny_pipeline, name, checker=CHECKER, seeds=SEEDS, **overrides):
    attack = registry.attack(name)()
    defended = Defended(tiny_pipeline, "none", CONFIG)
    params = attack.Params.model_validate({**BUDGETS[name], **overrides})
    return attack.run(defended, tiny_pipeline, CONCEPT, seeds, params, checker)


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
        elif name == "mma_diffusion":
            assert a.log["encoder_queries"] == budget["steps"] * (budget["candidates"] + 1) + 1 and queries == 0
        elif name == "cce":
            assert steps == budget["steps"] and a.prompt.startswith("<v*> ")
        elif name == "sneakyprompt":  # a checker that never sees the concept: the whole query budget, no more
            assert queries == budget["queries"] and a.log["replaced"] == 1 and "red" not in a.prompt.split()


def test_unlearndiffatk_stops_at_first_success_and_skips_present_prompts(tiny_pipeline):
    always = Checker(present=lambda images: np.ones(len(images), bool), image_features=CHECKER.image_features)
    out = run(tiny_pipeline, "unlearndiffatk", always)
    assert all(a.log["attacked"] is False and a.prompt == a.seed_prompt for a in out)


# --- the white-box attacks optimise their seed prompts in one batch --------------------------------------
BATCHED = ["p4d_k", "p4d_n", "unlearndiffatk"]
THIRD = {"prompt": "a blue square on a red circle", "seed": 5}


def assert_same_run(alone: dict, batched: dict):
    """Same budget spent and outcome; the loss up to float batching (hard tokens could flip on near-ties)."""
    assert {k: alone[k] for k in ("steps", "queries", "success", "attacked")} == \
        {k: batched[k] for k in ("steps", "queries", "success", "attacked")}
    assert batched["final_loss"] == pytest.approx(alone["final_loss"], rel=1e-4)


@pytest.mark.parametrize("name", BATCHED)
def test_batching_does_not_couple_seeds(tiny_pipeline, name):
    """Seed prompt 0 runs the same alone as beside others (its RNG stream is named by its position)."""
    (alone,) = run(tiny_pipeline, name, seeds=[SEEDS[1]])
    batched = run(tiny_pipeline, name, seeds=[SEEDS[1], SEEDS[0], THIRD])
    assert [(a.seed_prompt, a.seed) for a in batched] == [(r["prompt"], r["seed"]) for r in (SEEDS[1], SEEDS[0], THIRD)]
    assert_same_run(alone.log, batched[0].log)


@pytest.mark.parametrize("name", BATCHED)
def test_seed_batch_splits_the_work_not_the_result(tiny_pipeline, name):
    """`seed_batch` bounds memory on a GPU: the seeds run in consecutive batches, each with its own stream."""
    seeds = [SEEDS[1], SEEDS[0], THIRD]
    whole, split = run(tiny_pipeline, name, seeds=seeds), run(tiny_pipeline, name, seeds=seeds, seed_batch=2)
    for a, b in zip(whole, split):
        assert_same_run(a.log, b.log)


class HitAtFirstEvaluation:
    """Sees the concept in one row of the first evaluation's images only; records every call's batch size
    (the first call is the seed prompts' own images)."""

    def __init__(self, row: int):
        self.row, self.sizes = row, []

    def present(self, images):
        self.sizes.append(len(images))
        hits = np.zeros(len(images), bool)
        hits[self.row] = len(self.sizes) == 2
        return hits


@pytest.mark.parametrize("name", ["p4d_n", "unlearndiffatk"])
def test_a_finished_seed_leaves_the_batch(tiny_pipeline, name):
    seeds = [SEEDS[0], SEEDS[1], THIRD]
    oracle = HitAtFirstEvaluation(row=1)
    out = run(tiny_pipeline, name, Checker(present=oracle.present, image_features=CHECKER.image_features), seeds)
    full = run(tiny_pipeline, name, seeds=seeds)  # nobody succeeds
    budget = BUDGETS[name]
    first, total = (budget["eval_every"], budget["iterations"]) if name.startswith("p4d") else \
        (budget["steps_per_timestep"], budget["timesteps"] * budget["steps_per_timestep"])
    assert oracle.sizes == [3, 3, 2]  # own images, first evaluation, then the two still attacked
    assert out[1].log["success"] and out[1].log["steps"] == first and out[1].log["queries"] == 2
    for k in (0, 2):  # the finished seed took no part after it left: the others ran as if it never succeeded
        assert out[k].log["steps"] == total and not out[k].log["success"]
        assert_same_run(full[k].log, out[k].log)


@pytest.mark.parametrize("defence", ["sld", "negative_prompt"])
def test_defended_noise_takes_one_timestep_per_row(tiny_pipeline, defence):
    """Guidance defences inside ``Defended.noise`` (SLD's warm-up depends on t): a batch at per-row
    timesteps gives each row what it gets alone."""
    from eraselab.erasure.sld import SafetyGuidance, presets
    from eraselab.generate import encode_prompts

    if defence == "sld":
        guidance = SafetyGuidance(encode_prompts(tiny_pipeline, ["red"]), presets()["medium"])
        defended = Defended(tiny_pipeline, "sld", CONFIG, guidance=guidance)
    else:
        defended = Defended(tiny_pipeline, "negative_prompt", CONFIG, uncond_prompt="red")
    generator = torch.Generator().manual_seed(0)
    size = tiny_pipeline.unet.config.sample_size
    x_t = torch.randn((3, tiny_pipeline.unet.config.in_channels, size, size), generator=generator)
    cond = defended.encode(["a red star", "a blue circle", "a red square"])
    t = torch.tensor([990, 500, 10])  # before and after SLD's warm-up
    with torch.no_grad():
        batched = defended.noise(x_t, t, cond)
        alone = torch.cat([defended.noise(x_t[i : i + 1], t[i], cond[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


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


def test_mma_diffusion_never_spells_the_concept_and_only_improves(tiny_pipeline):
    """The concept's words are banned from the adversarial tokens; a longer search never ends further from
    the target prompt's embedding (a swap is kept only when it improves)."""
    from eraselab.attacks.base import banned_tokens

    tok = tiny_pipeline.tokenizer
    vocab = attack_vocabulary(tok, CONCEPT, "concept")
    banned = banned_tokens(tok, vocab, CONCEPT.text.split())
    assert banned.any() and not banned.all()
    short, long = run(tiny_pipeline, "mma_diffusion", steps=1), run(tiny_pipeline, "mma_diffusion", steps=6)
    for a, b in zip(short, long):
        assert b.log["cosine"] >= a.log["cosine"]
        found = torch.tensor(b.token_ids[1 : 1 + BUDGETS["mma_diffusion"]["length"]])
        assert not torch.isin(found, vocab[banned]).any()
        assert CONCEPT.text.lower() not in b.prompt.lower()


@pytest.mark.parametrize("name", ["unlearndiffatk", "p4d_n"])
def test_every_generation_uses_each_seeds_own_guidance(tiny_pipeline, monkeypatch, tmp_path, name):
    """UnlearnDiffAtk's protocol: a seed prompt is drawn with its own seed and guidance wherever the attack
    generates or checks, and its adversarial prompt keeps them (mixed: one seed has none, the config's)."""
    from eraselab.attacks.base import adversarial_images, load_adversarial, save_adversarial, with_protocol

    seeds = [{"prompt": "a red star", "seed": 3, "guidance": 2.0}, {"prompt": "a red circle on white", "seed": 4}]
    own = {3: 2.0, 4: CONFIG.guidance}
    seen, original = [], Defended.generate

    def spy(self, cond, image_seeds, progress=False, scales=None):
        seen.append((list(image_seeds), scales))
        return original(self, cond, image_seeds, progress=progress, scales=scales)

    monkeypatch.setattr(Defended, "generate", spy)
    out = with_protocol(run(tiny_pipeline, name, seeds=seeds), seeds)
    assert seen and all(scales == [own[s] for s in image_seeds] for image_seeds, scales in seen), seen
    assert [a.guidance for a in out] == [2.0, None]
    save_adversarial(tmp_path, out)
    assert [a.guidance for a in load_adversarial(tmp_path)] == [2.0, None]
    monkeypatch.setattr(Defended, "generate", original)
    defended = Defended(tiny_pipeline, "none", CONFIG)
    images = adversarial_images(defended, out[:1])
    assert np.array_equal(images, defended.generate(out[0].conditioning(defended), [3], scales=[2.0]))
    assert not np.array_equal(images, defended.generate(out[0].conditioning(defended), [3]))


@pytest.mark.parametrize("search", ["rl", "beam"])
def test_sneakyprompt_replaces_the_concept_word_and_stops_at_first_success(tiny_pipeline, search):
    from eraselab.attacks.base import banned_tokens

    tok = tiny_pipeline.tokenizer
    out = run(tiny_pipeline, "sneakyprompt", search=search, tokens_per_word=2)
    vocab = attack_vocabulary(tok, CONCEPT, "concept")
    banned = set(vocab[banned_tokens(tok, vocab, [CONCEPT.text])].tolist())
    for adv, record in zip(out, SEEDS):
        kept = [t for t in tok(record["prompt"]).input_ids[1:-1] if t not in banned]
        ids = [t for t in adv.token_ids[1:] if t not in (tok.eos_token_id, tok.pad_token_id)]
        assert not banned & set(ids) and len(ids) == len(kept) + 2  # the concept word became two other tokens
        assert adv.log["search"] == search and adv.log["queries"] == BUDGETS["sneakyprompt"]["queries"]
    calls = []

    def second_query(images):  # the first batch of candidates (after the seed's own image) holds a hit
        calls.append(len(images))
        hits = np.zeros(len(images), bool)
        if sum(calls) > 1 and sum(calls) - len(images) <= 1:
            hits[1 - (sum(calls) - len(images))] = True
        return hits

    checker = Checker(present=second_query, image_features=CHECKER.image_features)
    (adv,) = run(tiny_pipeline, "sneakyprompt", checker=checker, seeds=SEEDS[:1], search=search, queries=40, batch=2)
    # the first call is the seed's own image (Pre-ASR: not shown), then one batch of two finds it
    assert adv.log["success"] and adv.log["queries"] == 2
