"""SteerDiff on the tiny pipeline: the steering fit and formula, token labels and widening, benign prompts
passing through bit for bit, the artifact round trip, and the CoPro-style pairs file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eraselab.erasure.base import load_defended, write_artifact_manifest
from eraselab.erasure.steerdiff import (
    ARTIFACT_FILE,
    SteerDiff,
    SteerDiffDefended,
    SteerDiffParams,
    fit_steering,
    fit_steering_gd,
    flag_positions,
    read_pairs,
    split,
    steer,
    unsafe_positions,
)
from eraselab.generate import SamplingConfig, encode_prompts, generate_prompts
from eraselab.models import load_pipeline
from eraselab.models.text_encoding import tokenize
from eraselab.models.tokenizer import build_clip_tokenizer
from eraselab.params import parse_params
from eraselab.prompts.world_prompts import concept_spec
from eraselab.world.dataset import WorldSpec

SPEC = WorldSpec.from_params(parse_params({}).world)
CONCEPT = concept_spec(SPEC, "star", 8, 0)
CONFIG = SamplingConfig(steps=4, guidance=4.0)
PAIRS = Path(__file__).parent / "fixtures" / "steerdiff_pairs.jsonl"


def erase(tiny_pipeline_dir, out: Path, **overrides):
    """Erase into ``out`` as the CLI does; return (log without the curve, curve, defended path)."""
    params = SteerDiffParams(**overrides)
    out.mkdir(parents=True, exist_ok=True)
    log = SteerDiff().erase(load_pipeline(tiny_pipeline_dir, "cpu"), CONCEPT, params, out)
    curve = log.pop("loss")
    write_artifact_manifest(out, "steerdiff", CONCEPT, params, log)
    defended = load_defended(load_pipeline(tiny_pipeline_dir, "cpu"), out, CONFIG)
    return log, curve, defended


@pytest.fixture(scope="module")
def trained(tiny_pipeline_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("steerdiff") / "artifact"
    return (out, *erase(tiny_pipeline_dir, out))


def test_ridge_recovers_a_known_map_and_gd_gets_close():
    g = torch.Generator().manual_seed(0)
    a = torch.eye(8) + 0.3 * torch.randn(8, 8, generator=g)
    unsafe = torch.randn(200, 8, generator=g)
    safe = unsafe @ a.T
    assert torch.allclose(fit_steering(unsafe, safe, 1e-6), a, atol=1e-4)
    assert torch.allclose(fit_steering(unsafe, safe, 1e9), torch.eye(8), atol=1e-4)  # lam pulls toward I
    w = fit_steering_gd(unsafe, safe, 1e-3, steps=1500, lr=1e-2)
    assert (w - a).norm() / a.norm() < 0.02


def test_steer_moves_flagged_rows_by_the_formula_only():
    g = torch.Generator().manual_seed(1)
    states, w = torch.randn(2, 6, 4, generator=g), torch.randn(4, 4, generator=g)
    flags = torch.tensor([[0, 1, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0]]).bool()
    out = steer(states, flags, w, 0.7)
    for i, j in flags.nonzero().tolist():
        assert torch.allclose(out[i, j], 0.7 * (w @ states[i, j]) + 0.3 * states[i, j], atol=1e-6)
        assert not torch.allclose(out[i, j], states[i, j])
    assert torch.equal(out[~flags], states[~flags])
    assert torch.equal(steer(states, flags, w, 0.0), states)


def test_labels_are_the_concept_word_and_optionally_everything_after():
    tok = build_clip_tokenizer()
    ids = tokenize(tok, ["a green star", "a green shape", "a red five-pointed star", "a five-pointed star"]).tolist()
    eot = tok.eos_token_id
    assert unsafe_positions(ids[0], ids[1], eot, later=False) == [3]  # <sot> a green star
    assert unsafe_positions(ids[0], ids[1], eot, later=True) == list(range(3, 77))
    assert unsafe_positions(ids[2], ids[3], eot, later=False) == [2]  # the removed word "red"


def test_widening_flags_the_whole_word_and_every_later_position(trained):
    tok = build_clip_tokenizer()
    ids = tokenize(tok, ["a starry pentagram"])  # <sot> a starry pent agram <eot> <pad>...
    assert tok.convert_ids_to_tokens(ids[0, 3:5].tolist()) == ["pent", "agram</w>"]
    probs = torch.zeros(1, 77)
    probs[0, 4] = 0.9

    def flagged(p, **kw):
        return flag_positions(p, ids, tok, SteerDiffParams(**kw))[0].nonzero().flatten().tolist()

    assert flagged(probs, widen_word=False, widen_later=False) == [4]
    assert flagged(probs, widen_word=True, widen_later=False) == [3, 4]
    assert flagged(probs, widen_word=False, widen_later=True) == list(range(4, 77))
    first_piece, start_word = torch.zeros(1, 77), torch.zeros(1, 77)
    first_piece[0, 3], start_word[0, 1] = 0.9, 0.9
    assert flagged(first_piece, widen_word=True, widen_later=False) == [3, 4]
    assert flagged(start_word, widen_word=True, widen_later=False) == [1]  # <sot> is a word of its own
    # the trained defence, widen_later on: everything from the concept word to the last padding token
    flags = trained[3].flags(["a green star"])[0]
    first = int(flags.nonzero()[0])
    assert 1 <= first <= 3 and flags[first:].all() and not flags[:first].any()


def test_benign_prompts_pass_through_bit_identical(trained, tiny_pipeline):
    _, log, _, defended = trained
    train, _ = split(len(CONCEPT.anchor_prompts), 0.25, 0)
    retain_train, _ = split(len(CONCEPT.retain_prompts), 0.25, 1)
    benign = [CONCEPT.anchor_prompts[i] for i in train] + [CONCEPT.retain_prompts[i] for i in retain_train]
    assert not defended.flags(benign).any()
    assert torch.equal(defended.encode(benign), encode_prompts(tiny_pipeline, benign))
    # in a batch with a concept prompt, the benign row is still the plain one, bit for bit
    mixed = defended.encode([benign[0], "a green star"])
    plain = encode_prompts(tiny_pipeline, [benign[0], "a green star"])
    assert torch.equal(mixed[0], plain[0]) and not torch.allclose(mixed[1], plain[1])
    seeds = [1, 2]
    assert np.array_equal(defended.generate_prompts(benign[:2], seeds),
                          generate_prompts(tiny_pipeline, benign[:2], seeds, CONFIG, progress=False))
    assert log["prompts_changed"]["benign"] is not None and "false_positive_rate" in log["identifier"]["benign"]


def test_artifact_round_trip(trained, tiny_pipeline, tiny_pipeline_dir, tmp_path):
    out, log, curve, defended = trained
    assert isinstance(defended, SteerDiffDefended)
    assert json.loads((out / "artifact.json").read_text())["method"] == "steerdiff"
    assert len(curve) == SteerDiffParams().steps and curve[-1]["loss"] < curve[0]["loss"]
    assert log["steering"]["residual"] < 1 and log["identifier"]["train"]["recall"] > 0.9
    prompts = list(CONCEPT.erase_prompts[:2])
    images = defended.generate_prompts(prompts, [1, 2])
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    assert not torch.allclose(defended.encode(prompts), encode_prompts(tiny_pipeline, prompts))
    assert torch.equal(defended.fixed_context(""), encode_prompts(tiny_pipeline, [""]))  # unconditional unchanged
    # token embeddings (attacks' path, ids recovered from the vocabulary) agree with ids; gradients flow
    ids = defended.tokenize(prompts)
    embeds = defended.token_embeddings(ids).detach().requires_grad_(True)
    cond = defended.encode_token_embeddings(embeds)
    assert torch.equal(cond.detach(), defended.encode_ids(ids))
    cond.square().sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0
    # weights untouched, artifact bit-identical on a rerun
    for name in ("unet", "text_encoder"):
        base = getattr(tiny_pipeline, name).state_dict()
        assert all(torch.equal(v, base[k]) for k, v in getattr(defended.pipe, name).state_dict().items())
    erase(tiny_pipeline_dir, tmp_path / "again")
    assert (tmp_path / "again" / ARTIFACT_FILE).read_bytes() == (out / ARTIFACT_FILE).read_bytes()
    assert (tmp_path / "again" / "artifact.json").read_text() == (out / "artifact.json").read_text()


def test_pairs_file(tiny_pipeline_dir, tmp_path):
    pairs = read_pairs(PAIRS)
    assert len(pairs) == 4 and all(u != s and "star" not in s for u, s in pairs)
    log, _, _ = erase(tiny_pipeline_dir, tmp_path / "a", pairs_file=str(PAIRS), fit="gd", fit_steps=50)
    assert log["pairs"]["from_file"] == 4 and log["pairs"]["train"] + log["pairs"]["heldout"] == 12
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        erase(tiny_pipeline_dir, tmp_path / "b", pairs_file=str(tmp_path / "nope.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(PAIRS.read_text().splitlines()[0] + '\n{"unsafe_prompt": "a star", "concept": "star"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing key\(s\) \['safe_prompt'\]"):
        read_pairs(bad)
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_pairs(bad)
