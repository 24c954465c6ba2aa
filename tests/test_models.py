import json

import pytest
import torch
from safetensors.torch import load_file

from eraselab.models import ModelUnavailableError, load_pipeline


def test_pipeline_layout_is_stable_diffusions(tiny_pipeline_dir):
    index = json.loads((tiny_pipeline_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert part in index
    assert json.loads((tiny_pipeline_dir / "scheduler" / "scheduler_config.json").read_text())["clip_sample"] is False
    assert list(tiny_pipeline_dir.rglob("*.safetensors")) and not list(tiny_pipeline_dir.rglob("*.bin"))


def test_save_load_round_trip_offline(tiny_pipeline_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = load_pipeline(tiny_pipeline_dir, device="cpu")
    saved = load_file(tiny_pipeline_dir / "unet" / "diffusion_pytorch_model.safetensors")
    for name, tensor in pipe.unet.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    from eraselab.models.tokenizer import build_clip_tokenizer

    fresh = build_clip_tokenizer()
    for text in ("a star", "a five-pointed crimson star on a dark background"):
        assert pipe.tokenizer(text).input_ids == fresh(text).input_ids


def test_unavailable_hub_model_gives_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelUnavailableError) as err:
        load_pipeline("CompVis/stable-diffusion-v1-4", device="cpu")
    message = str(err.value)
    assert "CompVis/stable-diffusion-v1-4" in message and "hf download" in message


def test_missing_local_directory_is_named(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_pipeline(str(tmp_path / "nope" / "model"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        load_pipeline(tmp_path / "empty", device="cpu")


def test_cuda_request_without_cuda_is_named():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        load_pipeline("unused", device="cuda")
