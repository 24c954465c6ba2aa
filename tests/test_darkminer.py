"""Dark Miner's three stages and its rounds: mining lowers the denoising loss, verification tells a concept
conditioning from a random one, circumventing trains only the adapter, rounds stop by the rule."""

import json

import numpy as np
import pytest
import torch

from eraselab.erasure.base import EraseContext, load_defended, write_artifact_manifest
from eraselab.erasure.darkminer import (LORA_FILE, DarkMiner, DarkMinerParams, circumvent, denoising_loss, lora_config,
                                        mine, stop_reason, verify)
from eraselab.generate import SamplingConfig, encode_prompts, sample
from eraselab.models import load_pipeline
from eraselab.models.text_encoding import tokenize
from eraselab.params import parse_params
from eraselab.prompts.world_prompts import concept_spec
from eraselab.world.dataset import WorldSpec
from eraselab.attacks.base import image_latents

SPEC = WorldSpec.from_params(parse_params({}).world)
CONCEPT = concept_spec(SPEC, "red", 8, 0)
CONFIG = SamplingConfig(steps=4, guidance=4.0)
FAST = {"sample_steps": 4, "rounds": 2, "pool_size": 4, "batch_size": 2, "mine_steps": 3, "verify_samples": 2, "circumvent_steps": 3,
        "circumvent_lr": 1e-2}


def colour_features(images: np.ndarray) -> torch.Tensor:
    """A stand-in image encoder for the random-weight pipeline: 4 x 4 pooled colours."""
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2) / 255
    return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


def fixed_loss(pipe, pool, cond) -> float:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        return float(np.mean([denoising_loss(pipe, pool, cond, generator).item() for _ in range(16)]))


def pool_of(pipe, n=8):
    with torch.no_grad():
        images = sample(pipe, encode_prompts(pipe, [CONCEPT.erase_prompts[i % 4] for i in range(n)]), list(range(n)),
                        CONFIG, progress=False)
        return images, image_latents(pipe, images)


def run_erase(tiny_pipeline_dir, out, **overrides):
    params = DarkMinerParams.model_validate({**FAST, **overrides})
    pipe = load_pipeline(tiny_pipeline_dir, "cpu")
    out.mkdir(parents=True, exist_ok=True)
    log = DarkMiner().erase(pipe, CONCEPT, params, out, EraseContext(colour_features))
    curve, timing = log.pop("loss"), log.pop("timing")
    write_artifact_manifest(out, "darkminer", CONCEPT, params, log)
    return log, curve, timing


def test_mining_lowers_the_denoising_loss(tiny_pipeline):
    pipe = tiny_pipeline
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    _, pool = pool_of(pipe)
    init = tokenize(pipe.tokenizer, [CONCEPT.erase_prompts[0]])
    start = encode_prompts(pipe, [CONCEPT.erase_prompts[0]]).detach()
    for space in ("conditioning", "token_embeddings"):
        params = DarkMinerParams(mine_steps=30, mine_lr=5e-2, batch_size=8, mine_space=space)
        mined, losses = mine(pipe, pool, init, params, torch.Generator().manual_seed(0))
        assert mined.shape == start.shape and len(losses) == 30
        assert fixed_loss(pipe, pool, mined) < fixed_loss(pipe, pool, start), space


def test_verification_separates_the_concept_from_a_random_conditioning(dvc_smoke_run):
    """On the smoke model and its tiny CLIP: the concept prompt's conditioning passes the default tau, a
    random conditioning of the same norm does not (paired references, the default)."""
    from eraselab.models.clip import load_clip

    pipe = load_pipeline(dvc_smoke_run / "models" / "base", "cpu")
    clip = load_clip(dvc_smoke_run / "models" / "clip")
    sampling = SamplingConfig(steps=10, guidance=4.0)
    pool_images, pool_references = (sample(pipe, encode_prompts(pipe, list(prompts[:8])), list(range(8)),
                                           sampling, progress=False)
                                    for prompts in (CONCEPT.erase_prompts, CONCEPT.anchor_prompts))
    anchor = encode_prompts(pipe, [CONCEPT.anchor_prompts[0]])
    concept = encode_prompts(pipe, [CONCEPT.erase_prompts[0]])
    noise = torch.randn(concept.shape, generator=torch.Generator().manual_seed(0))
    random = noise * concept.norm() / noise.norm()
    seeds = [11, 12, 13, 14]
    concept_score = verify(pipe, concept, anchor, pool_images, seeds, clip.image_features, sampling, pool_references)
    random_score = verify(pipe, random, anchor, pool_images, seeds, clip.image_features, sampling, pool_references)
    tau = DarkMinerParams().threshold
    assert concept_score > tau > random_score, (concept_score, random_score)


def test_circumventing_trains_only_the_adapter(tiny_pipeline_dir):
    pipe = load_pipeline(tiny_pipeline_dir, "cpu")
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    _, pool = pool_of(pipe, 4)
    params = DarkMinerParams.model_validate(FAST)
    pipe.unet.add_adapter(lora_config(params))
    pipe.unet.requires_grad_(False)
    c = encode_prompts(pipe, [CONCEPT.erase_prompts[0]])
    anchor = encode_prompts(pipe, [CONCEPT.anchor_prompts[0]])
    import random

    losses = circumvent(pipe, pool, [(c, anchor)], [(1.0, anchor), (1.0, -c)], params, torch.Generator().manual_seed(0),
                        random.Random(0))
    assert len(losses) == params.circumvent_steps
    after = pipe.unet.state_dict()
    lora = {k for k in after if "lora_" in k}
    assert lora and all(".attn2." in k for k in lora)
    assert any(not torch.equal(after[k], torch.zeros_like(after[k])) for k in lora if "lora_B" in k)
    base = {k.replace(".base_layer", ""): v for k, v in after.items() if "lora_" not in k}
    assert base.keys() == before.keys() and all(torch.equal(base[k], before[k]) for k in before)
    assert not any(p.requires_grad for p in pipe.unet.parameters())


@pytest.mark.parametrize("passed, rounds, patience, stops", [
    ([], 3, 2, False), ([True, True], 3, 2, False), ([True, True, True], 3, 2, True), ([False], 3, 2, False),
    ([True, False, False], 5, 2, True), ([False, True, False], 5, 2, False)])
def test_stop_rule(passed, rounds, patience, stops):
    assert (stop_reason(passed, rounds, patience) is not None) == stops


def test_rounds_stop_by_the_rule_and_the_artifact_is_a_weight_edit(tiny_pipeline, tiny_pipeline_dir, tmp_path):
    # tau above any cosine: nothing verifies, so it stops after `patience` rounds and trains nothing
    log, curve, _ = run_erase(tiny_pipeline_dir, tmp_path / "never", threshold=1.0, rounds=5, patience=2)
    assert [r["passed"] for r in log["rounds"]] == [False, False] and log["circumvented"] == 0 and curve == []
    assert "2 failed" in log["stopped"]
    # tau below any cosine: every round verifies and circumvents, up to `rounds`
    log, curve, timing = run_erase(tiny_pipeline_dir, tmp_path / "always", threshold=-1.0, rounds=2)
    assert [r["passed"] for r in log["rounds"]] == [True, True] and log["circumvented"] == 2
    assert len(curve) == 2 * FAST["circumvent_steps"] and set(timing) == {"round_0_s", "round_1_s"}
    defended = load_defended(load_pipeline(tiny_pipeline_dir, "cpu"), tmp_path / "always", CONFIG)
    base = tiny_pipeline.unet.state_dict()
    edited = {k for k, v in defended.pipe.unet.state_dict().items() if not torch.equal(v, base[k])}
    assert edited and all(".attn2." in k for k in edited), sorted(edited)[:4]
    assert all(k in base for k in defended.pipe.unet.state_dict())  # adapter fused away: a plain UNet
    assert defended.generate_prompts(["a red star"], [3]).shape == (1, 16, 16, 3)
    # the same params give the same adapter, bit for bit
    run_erase(tiny_pipeline_dir, tmp_path / "again", threshold=-1.0, rounds=2)
    assert (tmp_path / "again" / LORA_FILE).read_bytes() == (tmp_path / "always" / LORA_FILE).read_bytes()
    assert json.loads((tmp_path / "always" / "artifact.json").read_text())["method"] == "darkminer"


def test_erase_without_image_features_is_refused(tiny_pipeline_dir, tmp_path):
    pipe = load_pipeline(tiny_pipeline_dir, "cpu")
    with pytest.raises(ValueError, match="--clip"):
        DarkMiner().erase(pipe, CONCEPT, DarkMinerParams.model_validate(FAST), tmp_path, EraseContext())
