"""Erasure methods on the tiny pipeline: each artifact loads and generates through `Defended`; weight
edits touch only the tensors they claim; inference-time defences leave weights alone."""

import json

import numpy as np
import pytest
import torch

from eraselab import registry
from eraselab.erasure.base import EDIT_FILE, Defended, load_defended, write_artifact_manifest
from eraselab.erasure.uce import aligned_positions
from eraselab.generate import SamplingConfig, encode_prompts, generate_prompts
from eraselab.models import load_pipeline
from eraselab.models.text_encoding import encode_token_embeddings, token_embeddings, tokenize
from eraselab.params import parse_params
from eraselab.prompts.world_prompts import concept_spec
from eraselab.world.dataset import WorldSpec

SPEC = WorldSpec.from_params(parse_params({}).world)
CONCEPT = concept_spec(SPEC, "star", 8, 0)
CONFIG = SamplingConfig(steps=4, guidance=4.0)
FAST = {"esd_x": {"steps": 3, "batch_size": 2, "trajectory_steps": 4, "lr": 1e-2},
        "esd_u": {"steps": 3, "batch_size": 2, "trajectory_steps": 4, "lr": 1e-2}}


def erase(tiny_pipeline_dir, tmp_path, name, **overrides):
    method = registry.method(name)()
    params = method.Params.model_validate({**FAST.get(name, {}), **overrides})
    pipe = load_pipeline(tiny_pipeline_dir, "cpu")
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = method.erase(pipe, CONCEPT, params, tmp_path)
    log.pop("loss", None)
    write_artifact_manifest(tmp_path, name, CONCEPT, params, log)
    return load_defended(load_pipeline(tiny_pipeline_dir, "cpu"), tmp_path, CONFIG)


def changed(tiny_pipeline, defended) -> set[str]:
    base = tiny_pipeline.unet.state_dict()
    return {k for k, v in defended.pipe.unet.state_dict().items() if not torch.equal(v, base[k])}


def test_text_path_from_token_embeddings_is_exact(tiny_pipeline):
    prompts = ["a red star", "a striped blue circle on white", ""]
    ids = tokenize(tiny_pipeline.tokenizer, prompts)
    manual = encode_token_embeddings(tiny_pipeline.text_encoder, token_embeddings(tiny_pipeline.text_encoder, ids))
    assert torch.equal(manual, encode_prompts(tiny_pipeline, prompts))
    assert torch.equal(Defended(tiny_pipeline, "none", CONFIG).encode(prompts), encode_prompts(tiny_pipeline, prompts))


@pytest.mark.parametrize("name, claims", [("esd_x", lambda k: ".attn2." in k),
                                          ("esd_u", lambda k: ".attn2." not in k and not k.startswith("time_embedding")),
                                          ("uce", lambda k: ".attn2.to_k." in k or ".attn2.to_v." in k)])
def test_weight_edits_touch_only_what_they_claim(tiny_pipeline, tiny_pipeline_dir, tmp_path, name, claims):
    defended = erase(tiny_pipeline_dir, tmp_path, name)
    edited = changed(tiny_pipeline, defended)
    assert edited and all(claims(k) for k in edited), sorted(edited)[:5]
    assert (tmp_path / EDIT_FILE).exists() and json.loads((tmp_path / "artifact.json").read_text())["method"] == name
    prompts, seeds = list(CONCEPT.erase_prompts[:2]), [1, 2]
    images = defended.generate_prompts(prompts, seeds)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    assert not np.array_equal(images, generate_prompts(tiny_pipeline, prompts, seeds, CONFIG, progress=False))
    # for a weight edit, the defended noise is the edited UNet's conditional prediction, exactly
    latents, t, cond = torch.randn(2, 4, 8, 8), torch.tensor(500), defended.encode(prompts)
    assert torch.equal(defended.noise(latents, t, cond), defended.pipe.unet(latents, t, encoder_hidden_states=cond).sample)


def test_esd_is_deterministic(tiny_pipeline_dir, tmp_path):
    a = erase(tiny_pipeline_dir, tmp_path / "a", "esd_x")
    b = erase(tiny_pipeline_dir, tmp_path / "b", "esd_x")
    assert (tmp_path / "a" / EDIT_FILE).read_bytes() == (tmp_path / "b" / EDIT_FILE).read_bytes()
    assert a.method == b.method == "esd_x"


@pytest.mark.parametrize("name", ["sld", "negative_prompt"])
def test_inference_time_defences_leave_weights_untouched(tiny_pipeline, tiny_pipeline_dir, tmp_path, name):
    defended = erase(tiny_pipeline_dir, tmp_path, name, **({"preset": "max"} if name == "sld" else {}))
    assert not changed(tiny_pipeline, defended) and not (tmp_path / EDIT_FILE).exists()
    prompts, seeds = list(CONCEPT.erase_prompts[:2]), [1, 2]
    plain = generate_prompts(tiny_pipeline, prompts, seeds, CONFIG, progress=False)
    assert not np.array_equal(defended.generate_prompts(prompts, seeds), plain)
    # the defence is inside the attackable noise prediction too
    latents, t, cond = torch.randn(2, 4, 8, 8), torch.tensor(100), defended.encode(prompts)
    eps_c = tiny_pipeline.unet(latents, t, encoder_hidden_states=cond).sample
    assert not torch.allclose(defended.noise(latents, t, cond), eps_c)


def test_negative_prompt_noise_matches_its_guidance(tiny_pipeline_dir, tmp_path):
    defended = erase(tiny_pipeline_dir, tmp_path, "negative_prompt")
    unet, s = defended.pipe.unet, CONFIG.guidance
    latents, t, cond = torch.randn(1, 4, 8, 8), torch.tensor(300), defended.encode(["a star"])
    eps = {p: unet(latents, t, encoder_hidden_states=defended.encode([p])).sample for p in ("", "star")}
    eps_c = unet(latents, t, encoder_hidden_states=cond).sample
    guided = eps["star"] + s * (eps_c - eps["star"])
    expected = eps[""] + (guided - eps[""]) / s
    assert torch.allclose(defended.noise(latents, t, cond), expected, atol=1e-5)


def test_sld_rejects_unknown_settings():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="valid choices: sld_warmup_steps"):
        registry.method("sld").Params.model_validate({"overrides": {"warmup": 3}})


def test_uce_alignment_skips_the_shared_prefix_and_shifts_the_rest():
    eot, pad = 9, 0
    erase_ids = [8, 1, 2, 3, 4, eot, pad, pad]  # "<sot> a red star on <eot>"
    anchor_ids = [8, 1, 3, 4, eot, pad, pad, pad]  # "<sot> a star on <eot>"
    pairs = aligned_positions(erase_ids, anchor_ids, eot)
    assert pairs[0] == (2, 1)  # the removed word maps to the token before it
    assert (3, 2) in pairs and (5, 4) in pairs and (7, 6) in pairs  # later tokens shift by one
    substitute = aligned_positions([8, 1, 5, eot, pad], [8, 1, 6, eot, pad], eot)
    assert substitute == [(2, 2), (3, 3), (4, 4)]  # "star" -> "shape": position for position


@pytest.mark.parametrize("module, where", [("text_encoder", "text_encoder"), ("text_encoder_first", "text_encoder"),
                                           ("unet_xattn", "unet")])
def test_advunlearn_trains_only_its_module_and_is_deterministic(tiny_pipeline, tiny_pipeline_dir, tmp_path, module, where):
    budget = {"module": module, "iterations": 2, "batch_size": 1, "retain_batch": 1, "attack_steps": 2,
              "attack_tokens": 2, "trajectory_steps": 3, "lr": 1e-3}
    first = erase(tiny_pipeline_dir, tmp_path / "a", "advunlearn", **budget)
    second = erase(tiny_pipeline_dir, tmp_path / "b", "advunlearn", **budget)
    edited = {m: {k for k, v in getattr(first.pipe, m).state_dict().items()
                  if not torch.equal(v, getattr(tiny_pipeline, m).state_dict()[k])} for m in ("unet", "text_encoder")}
    other = "unet" if where == "text_encoder" else "text_encoder"
    assert edited[where] and not edited[other]
    if module == "text_encoder_first":
        assert all("encoder.layers.0." in k for k in edited[where])
    if module == "unet_xattn":
        assert all(".attn2." in k for k in edited[where])
    log = json.loads((tmp_path / "a" / "artifact.json").read_text())["log"]
    assert log["module"] == module and log["trained_tensors"] >= len(edited[where])
    prompts, seeds = list(CONCEPT.erase_prompts[:2]), [1, 2]
    assert np.array_equal(first.generate_prompts(prompts, seeds), second.generate_prompts(prompts, seeds))


def test_advunlearn_inner_attack_moves_only_the_prefix(tiny_pipeline_dir):
    from eraselab.erasure.advunlearn import AdvUnlearn, AdvUnlearnParams

    pipe = load_pipeline(tiny_pipeline_dir, "cpu")
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    params = AdvUnlearnParams(attack_steps=3, attack_tokens=2)
    table = pipe.text_encoder.get_input_embeddings().weight[:10].detach()
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    prefix, loss = AdvUnlearn()._attack(pipe.unet, pipe.text_encoder, pipe.tokenizer, ["a red star"], latents,
                                        torch.tensor(500), target, table, params, torch.Generator().manual_seed(0))
    assert prefix.shape == (1, 2, table.shape[1]) and not prefix.requires_grad and loss > 0
    assert all(torch.equal(v, before[k]) for k, v in pipe.unet.state_dict().items())
