"""Every erasure method and every attack on modules of Stable Diffusion v1.4's real shape and layer names
(random weights, 8 x 8 latents = 64 px), loaded from a folder laid out exactly as the hub's SD v1.4 is.

The toy model shares SD's classes but not its widths, heads or block types; here a shape or layer-name
bug cannot hide. The shared pipeline is depth-trimmed (``layers=1``: one resnet/attention per level, one
text-encoder layer) to keep memory down; every remaining module has SD v1.4's shape and name, and the
full-depth configs are checked against SD v1.4's published parameter counts on the meta device.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eraselab import registry
from eraselab.attacks.base import Checker
from eraselab.erasure.base import Defended, EraseContext, load_defended, write_artifact_manifest
from eraselab.generate import SamplingConfig
from eraselab.models import load_pipeline
from eraselab.models import sd_shapes
from eraselab.models.sd_shapes import ATTACK_BUDGETS, METHOD_BUDGETS
from eraselab.params import parse_params
from eraselab.prompts.world_prompts import concept_spec
from eraselab.world.dataset import WorldSpec

pytestmark = pytest.mark.slow

LATENT, LAYERS, PIXELS = 8, 1, 64
CONCEPT = concept_spec(WorldSpec.from_params(parse_params({}).world), "star", 8, 0)
CONFIG = SamplingConfig(steps=2, guidance=7.5, scheduler="pndm", batch_size=1)  # SD v1.4's sampler
PROMPT, SEED = CONCEPT.erase_prompts[0], 5
# one step of each method: the code path, not the science


def colour_features(images: np.ndarray) -> torch.Tensor:
    """A stand-in image encoder (4 x 4 pooled colours): Dark Miner's verification and the checker's similarity."""
    x = torch.from_numpy(images).float().permute(0, 3, 1, 2) / 255
    return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


NEVER = Checker(present=lambda images: np.zeros(len(images), bool), image_features=colour_features)


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """The random SD-shaped pipeline written in the hub's layout, plus what was written (to compare)."""
    pipe = sd_shapes.build_sd14_like(LATENT, seed=0, layers=LAYERS)
    written = {name: {k: v.clone() for k, v in getattr(pipe, name).state_dict().items()}
               for name in ("text_encoder", "vae")}
    written["unet_attn2_to_k"] = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.weight.clone()
    folder = sd_shapes.write_hub_layout(pipe, tmp_path_factory.mktemp("hub") / "stable-diffusion-v1-4")
    return folder, written


@pytest.fixture(scope="module")
def base_image(hub_folder):
    return Defended(load_pipeline(hub_folder[0], "cpu"), "none", CONFIG).generate_prompts([PROMPT], [SEED])


def test_published_configs_have_sd14s_parameter_counts():
    """Full depth, built on the meta device (no memory): SD v1.4's known sizes and its 16 cross-attentions."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(sd_shapes.unet_config())
        vae = AutoencoderKL.from_config(sd_shapes.vae_config())
        text = CLIPTextModel(CLIPTextConfig(**sd_shapes.text_encoder_config()))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(unet), count(vae), count(text)) == (859_520_964, 83_653_863, 123_060_480)
    to_k = [m for n, m in unet.named_modules() if n.endswith(".attn2.to_k")]
    assert len(to_k) == 16 and {m.in_features for m in to_k} == {768}
    assert {m.out_features for m in to_k} == {320, 640, 1280}


def test_bad_sizes_are_refused_before_any_build():
    with pytest.raises(ValueError, match="sample_size must be a multiple of 8"):
        sd_shapes.build_sd14_like(sample_size=12)
    with pytest.raises(ValueError, match="layers must be None"):
        sd_shapes.build_sd14_like(layers=0)


def test_hub_layout_is_the_hubs(hub_folder):
    folder, _ = hub_folder
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["feature_extractor/preprocessor_config.json", "model_index.json",
                     "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
                     "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
                     "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                     "vae/config.json", "vae/diffusion_pytorch_model.safetensors"]
    assert json.loads((folder / "model_index.json").read_text())["safety_checker"] == [
        "stable_diffusion", "StableDiffusionSafetyChecker"]  # named, but its weights are not there
    from safetensors import safe_open

    with safe_open(folder / "text_encoder" / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("text_model.") for k in keys) and "text_model.embeddings.position_ids" in keys
    with safe_open(folder / "vae" / "diffusion_pytorch_model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "encoder.mid_block.attentions.0.query.weight" in keys and not any(".to_q." in k for k in keys)


def test_hub_layout_loads_with_the_written_weights(hub_folder):
    """The legacy names were understood, not silently re-initialised: tensor for tensor equal."""
    folder, written = hub_folder
    pipe = load_pipeline(folder, "cpu")
    for name in ("text_encoder", "vae"):
        loaded = getattr(pipe, name).state_dict()
        assert loaded.keys() == written[name].keys(), name
        unequal = [k for k, v in loaded.items() if not torch.equal(v, written[name][k])]
        assert not unequal, (name, unequal[:3])
    attn2 = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2
    assert torch.equal(attn2.to_k.weight, written["unet_attn2_to_k"]) and attn2.to_k.in_features == 768
    assert pipe.unet.config.sample_size == LATENT  # diffusers would reset an old-version config's to 64
    assert pipe.safety_checker is None and pipe.vae.config.scaling_factor == pytest.approx(0.18215)
    assert type(pipe.scheduler).__name__ == "PNDMScheduler" and pipe.scheduler.config.clip_sample is False
    # the hub's vocab.json + merges.txt give CLIP's ids (no tokenizer.json in the folder)
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(pipe.tokenizer) == 49408 and pipe.tokenizer.model_max_length == 77


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_every_method_erases_loads_and_generates(hub_folder, base_image, tmp_path, name):
    folder, _ = hub_folder
    method = registry.method(name)()
    budget = METHOD_BUDGETS.get(name, {})
    pipe = load_pipeline(folder, "cpu")
    if name == "external":  # an erased model made elsewhere: here, SD-shaped cross-attention keys scaled
        from safetensors.torch import save_file

        edit = {k: (v * 1.5).contiguous() for k, v in pipe.unet.state_dict().items() if ".attn2.to_k." in k}
        save_file(edit, tmp_path / "edit.safetensors")
        budget = {"models": {CONCEPT.name: {"unet": str(tmp_path / "edit.safetensors")}}}
    params = method.Params.model_validate(budget)
    log = method.erase(pipe, CONCEPT, params, tmp_path, EraseContext(colour_features))
    log.pop("loss", None)
    log.pop("timing", None)
    write_artifact_manifest(tmp_path, name, CONCEPT, params, log)
    del pipe
    defended = load_defended(load_pipeline(folder, "cpu"), tmp_path, CONFIG)  # the artifact alone carries it
    image = defended.generate_prompts([PROMPT], [SEED])
    assert image.shape == (1, PIXELS, PIXELS, 3) and image.dtype == np.uint8
    if name == "none":
        assert np.array_equal(image, base_image)
    else:  # every defence changes what the concept prompt generates, even after one step
        assert not np.array_equal(image, base_image), name
    if name == "darkminer":
        assert log["circumvented"] == 1 and log["lora_parameters"] > 0


@pytest.mark.parametrize("name", sorted(registry.ATTACKS))
def test_every_attack_runs_a_step_and_its_prompt_generates(hub_folder, name):
    folder, _ = hub_folder
    pipe = load_pipeline(folder, "cpu")
    defended = Defended(pipe, "none", CONFIG)
    attack = registry.attack(name)()
    seeds = [{"prompt": PROMPT, "seed": SEED}]
    (out,) = attack.run(defended, pipe, CONCEPT, seeds, attack.Params.model_validate(ATTACK_BUDGETS[name]), NEVER)
    assert (out.seed_prompt, out.seed) == (PROMPT, SEED)
    if out.token_ids is not None:
        assert len(out.token_ids) == 77 and out.token_ids[0] == 49406 and max(out.token_ids) < 49408
    if out.token_embeddings is not None:
        assert out.token_embeddings.shape == (77, 768)
    cond = out.conditioning(defended)
    assert cond.shape == (1, 77, 768) and torch.isfinite(cond).all()
    image = defended.generate(cond, [SEED])
    assert image.shape == (1, PIXELS, PIXELS, 3) and image.dtype == np.uint8
