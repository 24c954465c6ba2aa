"""`external`: an erased model made elsewhere (a pipeline folder, module safetensors, a LoRA in peft or kohya
naming) evaluated like any other method; a file that does not fit is one named error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eraselab import registry
from eraselab.erasure.base import load_defended, write_artifact_manifest
from eraselab.errors import ArtifactError, UserError
from eraselab.models import load_pipeline
from test_erasure import CONCEPT, CONFIG, erase

PROMPTS, SEEDS = list(CONCEPT.erase_prompts[:2]), [1, 2]


def external(tiny_pipeline_dir, out, **source):
    method = registry.method("external")()
    params = method.Params.model_validate({"models": {CONCEPT.name: source}})
    out.mkdir(parents=True, exist_ok=True)
    log = method.erase(load_pipeline(tiny_pipeline_dir, "cpu"), CONCEPT, params, out)
    write_artifact_manifest(out, "external", CONCEPT, params, log)
    return load_defended(load_pipeline(tiny_pipeline_dir, "cpu"), out, CONFIG), log


@pytest.fixture(scope="module")
def esd(tiny_pipeline_dir, tmp_path_factory):
    """An ESD-x erased model, as another codebase would hand it over: a whole pipeline folder."""
    defended = erase(tiny_pipeline_dir, tmp_path_factory.mktemp("esd"), "esd_x")
    folder = tmp_path_factory.mktemp("erased") / "pipeline"
    defended.pipe.save_pretrained(folder, safe_serialization=True)
    return defended, folder


def test_a_pipeline_folder_behaves_as_the_method_that_made_it(tiny_pipeline_dir, tmp_path, esd):
    reference, folder = esd
    defended, log = external(tiny_pipeline_dir, tmp_path / "a", pipeline=str(folder))
    assert log["changed_tensors"]["text_encoder"] == 0 and log["changed_tensors"]["unet"] > 0
    assert np.array_equal(defended.generate_prompts(PROMPTS, SEEDS), reference.generate_prompts(PROMPTS, SEEDS))


def test_a_unet_state_dict_alone_is_enough_and_only_changes_are_stored(tiny_pipeline_dir, tmp_path, esd):
    from safetensors.torch import load_file

    reference, folder = esd
    defended, log = external(tiny_pipeline_dir, tmp_path / "b",
                             unet=str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    stored = load_file(tmp_path / "b" / "unet_edit.safetensors")
    assert len(stored) == log["changed_tensors"]["unet"] < len(reference.pipe.unet.state_dict())
    assert all(".attn2." in name for name in stored)  # ESD-x edits cross-attention only
    assert np.array_equal(defended.generate_prompts(PROMPTS, SEEDS), reference.generate_prompts(PROMPTS, SEEDS))


def _lora_state(tiny_pipeline_dir):
    """A random LoRA on the UNet's cross-attention, in diffusers/peft naming (``unet.<module>.lora_A.weight``)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = load_pipeline(tiny_pipeline_dir, "cpu")
    pipe.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["attn2.to_k", "attn2.to_v"],
                                     init_lora_weights=False))
    torch.manual_seed(0)
    return {f"unet.{k}": v.contiguous() for k, v in get_peft_model_state_dict(pipe.unet).items()}


def _kohya(state: dict) -> dict:
    """The same LoRA in kohya naming: lora_unet_<module path with _>.lora_down/lora_up.weight and .alpha."""
    out = {}
    for key, value in state.items():
        module, _, rest = key.removeprefix("unet.").rpartition(".lora_")
        name = "lora_unet_" + module.replace(".", "_")
        out[f"{name}.lora_{'down' if rest.startswith('A') else 'up'}.weight"] = value
        out[f"{name}.alpha"] = torch.tensor(float(value.shape[0] if rest.startswith("A") else value.shape[1]))
    return out


@pytest.mark.parametrize("naming", ["peft", "kohya"])
def test_a_lora_in_either_naming_is_fused(tiny_pipeline_dir, tmp_path, naming):
    from safetensors.torch import save_file

    state = _lora_state(tiny_pipeline_dir)
    path = tmp_path / f"{naming}.safetensors"
    save_file(state if naming == "peft" else _kohya(state), path)
    defended, log = external(tiny_pipeline_dir, tmp_path / "out", lora=str(path))
    assert log["changed_tensors"]["unet"] == sum(k.endswith("lora_A.weight") for k in state)  # each targeted weight
    base = load_pipeline(tiny_pipeline_dir, "cpu")
    assert not np.array_equal(defended.generate_prompts(PROMPTS, SEEDS),
                              registry.method("none")().load(base, tmp_path, CONFIG).generate_prompts(PROMPTS, SEEDS))


def test_peft_and_kohya_namings_give_the_same_model(tiny_pipeline_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    state = _lora_state(tiny_pipeline_dir)
    save_file(state, tmp_path / "peft.safetensors")
    save_file(_kohya(state), tmp_path / "kohya.safetensors")
    external(tiny_pipeline_dir, tmp_path / "p", lora=str(tmp_path / "peft.safetensors"))
    external(tiny_pipeline_dir, tmp_path / "k", lora=str(tmp_path / "kohya.safetensors"))
    a, b = load_file(tmp_path / "p" / "unet_edit.safetensors"), load_file(tmp_path / "k" / "unet_edit.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("source, message", [
    ({"unet": "nope.safetensors"}, r"nope.safetensors missing"),
    ({"pipeline": "no_such_folder"}, r"no_such_folder: no such pipeline folder"),
    ({"lora": "gone.safetensors"}, r"gone.safetensors missing"),
])
def test_a_missing_file_is_named(tiny_pipeline_dir, tmp_path, source, message):
    with pytest.raises(ArtifactError, match=message):
        external(tiny_pipeline_dir, tmp_path / "x", **source)


def test_weights_of_another_architecture_are_refused_before_anything_is_applied(tiny_pipeline_dir, tmp_path):
    from safetensors.torch import save_file

    from eraselab.models.components import build_unet
    from eraselab.params import parse_params

    foreign = build_unet(parse_params({"base_model": {"unet": {"block_channels": [8, 16]}}}).base_model.unet, 8, 4, 48)
    save_file({k: v.contiguous() for k, v in foreign.state_dict().items()}, tmp_path / "foreign.safetensors")
    with pytest.raises(ArtifactError, match=r"foreign.safetensors: tensor '.*' has shape .*another architecture"):
        external(tiny_pipeline_dir, tmp_path / "x", unet=str(tmp_path / "foreign.safetensors"))


def test_the_base_model_itself_is_refused(tiny_pipeline_dir, tmp_path):
    with pytest.raises(ArtifactError, match="change nothing in the base model"):
        external(tiny_pipeline_dir, tmp_path / "x", pipeline=str(tiny_pipeline_dir))


def test_a_concept_without_a_model_names_the_key(tiny_pipeline_dir, tmp_path):
    method = registry.method("external")()
    params = method.Params.model_validate({"models": {"red": {"unet": "x.safetensors"}}})
    with pytest.raises(UserError, match=f"erase.external.models.{CONCEPT.name}: missing; .*concepts given: red"):
        method.erase(load_pipeline(tiny_pipeline_dir, "cpu"), CONCEPT, params, tmp_path)


def test_its_files_are_data_dependencies_of_its_erase_jobs():
    from eraselab.params import parse_params
    from eraselab.stages import erase

    params = parse_params({"grid": {"concepts": ["red", "star"], "methods": ["none", "external"]},
                           "erase": {"external": {"models": {"red": {"pipeline": "erased/red"},
                                                             "star": {"unet": "u.safetensors", "lora": "l.safetensors"}}}}})
    deps = {job.keys["concept"]: job.deps for job in erase.jobs(params) if job.keys["method"] == "external"}
    assert "erased/red" in deps["red"] and {"u.safetensors", "l.safetensors"} <= set(deps["star"])
    assert not any("erased/red" in job.deps for job in erase.jobs(params) if job.keys["method"] == "none")
