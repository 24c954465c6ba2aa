"""Q16 (violence and I2P's other categories): the rule, the safe conversion of its pickled prompts, errors."""

from __future__ import annotations

import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from eraselab.evaluation.clip_score import ClipScoreSpec
from eraselab.evaluation.detectors import DETECTORS, build_detector
from eraselab.evaluation.q16 import ConversionError, Q16Detector, Q16Params, convert_prompts, read_prompts_pickle
from eraselab.models.loading import ModelUnavailableError
from eraselab.params import parse_params
from eraselab.preflight import missing_externals


class AxisClip:
    """A CLIP whose image feature is the image's normalised mean (red, green) colour: 2-d, like Q16's prompts."""

    spec = ClipScoreSpec(model="ViT-B-32", pretrained=None)

    def text_features(self, texts):
        return torch.nn.functional.normalize(torch.ones(len(texts), 2), dim=-1)

    def image_features(self, images):
        mean = torch.from_numpy(images.reshape(len(images), -1, 3)[..., :2].mean(1)).float() + 1e-6
        return torch.nn.functional.normalize(mean, dim=-1)


def images(*colours) -> np.ndarray:
    return np.stack([np.full((8, 8, 3), c, np.uint8) for c in colours])


def prompts_file(tmp_path, rows) -> Path:
    path = tmp_path / "q16.safetensors"
    save_file({"prompts": np.asarray(rows, np.float32)}, str(path))
    return path


def detector(tmp_path, rows=((0.0, 1.0), (1.0, 0.0))) -> Q16Detector:
    params = Q16Params(clip={"model": "ViT-B-32", "pretrained": None}, weights=str(prompts_file(tmp_path, rows)))
    return Q16Detector(params, AxisClip())


def test_an_image_counts_when_it_is_closer_to_the_inappropriate_prompt(tmp_path):
    q16 = detector(tmp_path)  # appropriate: green axis, inappropriate: red axis
    shown = images((200, 10, 0), (10, 200, 0), (120, 100, 0), (100, 120, 0))
    assert q16.present(shown).tolist() == [True, False, True, False]
    sims = q16.similarities(shown[:1])
    assert sims.shape == (1, 2) and sims[0, 1] > sims[0, 0]
    assert q16.present(np.zeros((0, 8, 8, 3), np.uint8)).tolist() == []
    spec = q16.spec()
    assert spec["detector"] == "q16" and spec["targets"] == ["inappropriate"] and spec["prompts_version"].startswith("sha256 ")
    assert "q16" in DETECTORS


def test_released_pickle_converts_without_running_code(tmp_path):
    array = np.random.default_rng(0).normal(size=(2, 768))
    source = tmp_path / "prompts.p"
    source.write_bytes(pickle.dumps(array))
    out = tmp_path / "ext" / "q16.safetensors"
    assert convert_prompts(source, out) == (2, 768)
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(load_file(str(out))["prompts"], array.astype(np.float32))
    # the command does the same, one line out
    result = subprocess.run(["eraselab", "convert-q16", "--source", str(source), "--out", str(tmp_path / "b.safetensors")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "prompts 2 x 768" in result.stdout


class Evil:
    def __reduce__(self):
        return (subprocess.call, (["touch", "/tmp/eraselab-q16-pwned"],))


@pytest.mark.parametrize("payload,message", [
    (pickle.dumps(Evil()), "refused subprocess.call"),
    (pickle.dumps({"prompts": 1}), "found dict"),
    (pickle.dumps(np.zeros((3, 4))), "expected a float array 2 x D"),
    (pickle.dumps(np.array([[np.nan, 1.0], [0.0, 1.0]])), "non-finite"),
    (b"not a pickle", "not Q16's prompts.p"),
])
def test_anything_but_a_two_row_array_is_refused(tmp_path, payload, message):
    source = tmp_path / "prompts.p"
    source.write_bytes(payload)
    marker = Path("/tmp/eraselab-q16-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(ConversionError, match=message) as err:
        read_prompts_pickle(source)
    assert str(source) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()  # nothing in the file ran


def test_prompt_file_errors_name_the_file_and_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="must be a .safetensors file"):
        Q16Params(weights="prompts.p")
    with pytest.raises(ModelUnavailableError, match="eraselab convert-q16"):
        Q16Detector(Q16Params(clip={"model": "ViT-B-32", "pretrained": None}, weights=str(tmp_path / "none.safetensors")),
                    AxisClip())
    with pytest.raises(ConversionError, match="3-d but the CLIP's embeddings are 2-d"):
        detector(tmp_path, rows=((0, 1, 0), (1, 0, 0)))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ConversionError, match="not a readable safetensors file"):
        Q16Detector(Q16Params(clip={"model": "ViT-B-32", "pretrained": None}, weights=str(bad)), AxisClip())


def test_preflight_names_the_missing_prompts_and_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    data = {"grid": {"concepts": ["red", "violence"]}, "real_concepts": {"violence": {"preset": "violence"}},
            "evaluation": {"detectors": {"violence": {"name": "q16", "params": {}}}}}
    lines = missing_externals(parse_params(data))
    assert [line for line in lines if "q16_prompts" in line] == [
        "evaluation.detectors.violence.params.weights: data/external/q16_prompts.safetensors missing: Q16's learned "
        "prompts for CLIP ViT-L/14: data/ViT-L-14/prompts.p of the ml-research/Q16 GitHub repository, converted with "
        "`eraselab convert-q16 --source prompts.p --out data/external/q16_prompts.safetensors`"]
    assert any(line.startswith("evaluation.detectors.violence.params.clip: ") for line in lines)  # not the CLIP score's
    # the same CLIP as the CLIP score's: its weights are listed once, under the CLIP score
    lines = missing_externals(parse_params({**data, "evaluation": {**data["evaluation"], "clip_score": {
        "model": "ViT-L-14", "pretrained": "openai"}}}))
    assert not any("detectors.violence.params.clip" in line for line in lines)
    assert len([line for line in lines if line.startswith("evaluation.clip_score")]) == 1


def test_q16_on_an_open_clip_model_of_the_real_architecture_family(tmp_path):
    """The real path's wiring: open_clip builds the CLIP (random weights here: the ViT-B-32 config), its joint
    space sets the prompts' width, and images of any size go through its preprocessing."""
    width = 512  # ViT-B-32's embedding width (ViT-L-14's is 768)
    rows = np.random.default_rng(1).normal(size=(2, width))
    q16 = build_detector("q16", {"clip": {"model": "ViT-B-32", "pretrained": None},
                                 "weights": str(prompts_file(tmp_path, rows)), "device": "cpu"})
    out = q16.present(np.random.default_rng(2).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8))
    assert out.dtype == bool and out.shape == (3,)
    assert q16.present(np.random.default_rng(2).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)).tolist() == out.tolist()
