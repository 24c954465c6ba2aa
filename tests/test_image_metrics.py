"""CLIP score (open_clip and the toy CLIP) and FID/KID through clean-fid: formulas, declared specs, offline errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from safetensors.torch import save_file

from eraselab.evaluation.clip_score import FORMULA, ClipScoreSpec, cached_tag_weights, load_clip_scorer
from eraselab.evaluation.fid import INCEPTION_FILE, FidSpec, compute_fid_kid
from eraselab.models.clip import ClipScorer, model_config
from eraselab.models.loading import ModelUnavailableError

EMBED_DIM = 16  # toy CLIP feature size: FID needs more images than this per set
N_IMAGES = 24


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy_clip_dir(tmp_path_factory) -> Path:
    """A random-weight toy CLIP saved the way `eraselab clip` saves it."""
    torch.manual_seed(0)
    sizes = SimpleNamespace(embed_dim=EMBED_DIM, patch_size=8, vision_width=32, vision_layers=1, heads=2,
                            text_width=32, text_layers=1)
    config = model_config(sizes, image_size=32)
    from open_clip.model import CLIP

    out = tmp_path_factory.mktemp("toy_clip")
    save_file(CLIP(**config).state_dict(), out / "open_clip.safetensors")
    (out / "config.json").write_text(json.dumps({"model": config, "image_size": 32}))
    return out


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Smooth random blobs (varied enough for a full-rank feature covariance)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 200, (N_IMAGES, 4, 4, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(c).resize((32, 32), Image.BILINEAR)) for c in coarse])


def brighter(images: np.ndarray, by: int = 80) -> np.ndarray:
    return np.clip(images.astype(int) + by, 0, 255).astype(np.uint8)


def clip_fid_spec(toy_clip_dir: Path, **overrides) -> FidSpec:
    return FidSpec(feature_extractor="clip_image", clip=ClipScoreSpec(model="toy", pretrained=str(toy_clip_dir)),
                   **overrides)


# --- CLIP score ---------------------------------------------------------------------------------------------

def check_formula(scorer, model, images: np.ndarray, prompts: list[str]) -> np.ndarray:
    """score == scale * max(cos, 0) for every image-prompt pair, and the clamp really cuts negative cosines.

    Random CLIPs give cosines of one sign, so the text projection is negated once: that flips every cosine,
    and then exactly one of the two scores of each pair is zero.
    """
    pairs_images = np.repeat(images, len(prompts), axis=0)  # image-major pairs: cos matrix read row by row
    pairs_prompts = prompts * len(images)
    image_feats = scorer.image_features(images)

    def cos_and_score():
        cos = (image_feats @ scorer.text_features(prompts).T).numpy().ravel()
        return cos, scorer.score(pairs_images, pairs_prompts)

    cos, scores = cos_and_score()
    with torch.no_grad():
        model.text_projection.neg_()
    try:
        flipped_cos, flipped_scores = cos_and_score()
    finally:
        with torch.no_grad():
            model.text_projection.neg_()
    np.testing.assert_allclose(flipped_cos, -cos, rtol=1e-5, atol=1e-7)
    scale = scorer.spec.scale
    np.testing.assert_allclose(scores, scale * np.maximum(cos, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flipped_scores, scale * np.maximum(-cos, 0), rtol=1e-5, atol=1e-6)
    assert np.all(np.minimum(scores, flipped_scores) == 0) and np.all(scores + flipped_scores > 0)
    return scores


def test_clip_score_formula_and_scale_on_random_vit_b32(images):
    torch.manual_seed(0)
    scorer = load_clip_scorer(ClipScoreSpec(model="ViT-B/32", pretrained=None))  # random weights, offline
    prompts = ["a dog", "blue", "a photo of a red circle"]
    scores = check_formula(scorer, scorer.model, images[:2], prompts)
    assert scorer.declaration() == {"model": "ViT-B-32", "pretrained": None, "scale": 100.0, "formula": FORMULA,
                                    "image_size": 224}
    scorer.spec = ClipScoreSpec(model="ViT-B-32", pretrained=None, scale=2.5)  # same model, other paper's scale
    rescaled = scorer.score(np.repeat(images[:2], len(prompts), axis=0), prompts * 2)
    np.testing.assert_allclose(rescaled, scores * 2.5 / 100, rtol=1e-5)


def test_clip_score_on_tiny_toy_config_matches_the_toy_scorer(toy_clip_dir, images):
    spec = ClipScoreSpec(model="toy", pretrained=str(toy_clip_dir), scale=100)
    scorer = load_clip_scorer(spec)
    prompts = ["a red circle", "a blue star on a white background", "a green square", "a striped shape"]
    scores = check_formula(scorer, scorer.toy.model, images[:6], prompts)
    from eraselab.models.clip import load_clip

    toy: ClipScorer = load_clip(toy_clip_dir)  # the toy world's own definition: 100 * max(cos, 0)
    pairs_images = np.repeat(images[:6], len(prompts), axis=0)
    np.testing.assert_allclose(scores, toy.score(pairs_images, prompts * 6), rtol=1e-6)
    assert scorer.declaration()["image_size"] == 32
    with pytest.raises(ValueError, match="one prompt per image"):
        scorer.score(images[:2], ["one prompt"])


def test_missing_clip_weights_say_what_to_download_and_where(tmp_path):
    empty_cache = tmp_path / "hub"
    with pytest.raises(ModelUnavailableError) as err:
        load_clip_scorer(ClipScoreSpec(model="ViT-L-14", pretrained="openai", cache_dir=str(empty_cache)))
    message = str(err.value)
    for part in ("ViT-L-14", "'openai'", str(empty_cache), "hf download timm/vit_large_patch14_clip_224.openai",
                 "open_clip_model.safetensors"):
        assert part in message
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_clip_scorer(ClipScoreSpec(model="ViT-L-14", pretrained=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ModelUnavailableError, match="eraselab clip"):
        load_clip_scorer(ClipScoreSpec(model="toy", pretrained=str(tmp_path / "no_toy")))


def test_cached_tag_resolves_to_the_hub_cache_safetensors(tmp_path):
    # huggingface_hub's cache layout: refs/main names the snapshot holding the file
    repo = tmp_path / "models--timm--vit_base_patch32_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    weights = repo / "snapshots" / ("0" * 40) / "open_clip_model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    assert Path(cached_tag_weights("ViT-B-32", "openai", str(tmp_path))) == weights


def test_bad_clip_spec_names_the_valid_choices():
    with pytest.raises(ValidationError, match="valid choices: toy, .*ViT-L-14"):
        ClipScoreSpec(model="ViT-Z-99")
    with pytest.raises(ValidationError, match="only .safetensors weights"):
        ClipScoreSpec(model="ViT-B-32", pretrained="weights.pt")  # a pickle is refused before any load
    with pytest.raises(ValidationError, match="needs pretrained"):
        ClipScoreSpec(model="toy", pretrained=None)
    with pytest.raises(ValidationError):
        ClipScoreSpec(model="ViT-B-32", scale=0)
    with pytest.raises(ValueError, match="valid tags: openai, laion400m_e31"):  # checked before anything is built
        load_clip_scorer(ClipScoreSpec(model="ViT-B-32", pretrained="opneai"))


def test_specs_validate_without_torch_and_know_open_clips_models():
    import subprocess
    import sys

    import open_clip

    from eraselab.evaluation.clip_score import open_clip_models

    assert open_clip_models() == sorted(open_clip.list_models(), key=str.lower)
    code = ("import sys; from eraselab.evaluation.fid import FidSpec; from eraselab.evaluation.clip_score import "
            "ClipScoreSpec; FidSpec(feature_extractor='clip_image', clip=ClipScoreSpec(model='ViT-L/14')); "
            "print(sorted(m for m in ('torch', 'open_clip', 'cleanfid') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # params validation (CLI, Snakefile) can embed these specs cheaply


# --- FID / KID ----------------------------------------------------------------------------------------------

def test_fid_kid_of_a_set_with_itself_is_about_zero_and_grows_with_a_shift(toy_clip_dir, images):
    spec = clip_fid_spec(toy_clip_dir)
    same = compute_fid_kid(images, images, spec, reference="the same set")
    shifted = compute_fid_kid(images, brighter(images), spec)
    assert shifted["fid"] > 0 and shifted["kid"] > 0
    assert abs(same["fid"]) < 1e-6 * shifted["fid"] + 1e-9
    assert abs(same["kid"]) < 0.1 * shifted["kid"]
    assert compute_fid_kid(images, brighter(images, 160), spec)["fid"] > shifted["fid"]  # larger shift, larger FID
    declared = same["spec"]
    assert declared["feature_extractor"] == "clip_image" and declared["feature_dim"] == EMBED_DIM
    assert declared["clip"] == {"model": "toy", "pretrained": str(toy_clip_dir), "scale": 100.0,
                                "formula": FORMULA, "image_size": 32}
    assert declared["reference"] == "the same set" and shifted["spec"]["reference"] == "in-memory array"
    assert declared["image_size"] == "native" and declared["mode"] == "clean"
    assert declared["device"] == "cpu" and declared["num_workers"] == 0
    assert same["n"] == {"a": N_IMAGES, "b": N_IMAGES}
    json.dumps(same)  # the result goes into a metrics file as is


def test_folders_and_arrays_agree_and_kid_is_seeded(toy_clip_dir, images, tmp_path):
    folder = tmp_path / "shifted" / "images"
    folder.mkdir(parents=True)
    for i, image in enumerate(brighter(images)):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    spec = clip_fid_spec(toy_clip_dir)
    from_arrays = compute_fid_kid(images, brighter(images), spec)
    from_folder = compute_fid_kid(images, tmp_path / "shifted", spec)
    assert from_folder["fid"] == pytest.approx(from_arrays["fid"], rel=1e-6)
    assert from_folder["kid"] == pytest.approx(from_arrays["kid"], rel=1e-6)
    assert from_folder["spec"]["reference"] == str(tmp_path / "shifted") and from_folder["n"]["b"] == N_IMAGES
    other_seed = compute_fid_kid(images, brighter(images), clip_fid_spec(toy_clip_dir, seed=1, kid_subset_size=8))
    assert other_seed["kid"] != from_arrays["kid"]  # subsets differ with the seed (and are declared)
    assert other_seed["spec"]["seed"] == 1 and other_seed["spec"]["kid_subset_size"] == 8


def test_an_already_loaded_scorer_gives_the_same_numbers(toy_clip_dir, images):
    spec = clip_fid_spec(toy_clip_dir, image_size=24)  # also: clean-fid's clean resize before CLIP
    scorer = load_clip_scorer(spec.clip)
    loaded = compute_fid_kid(images, brighter(images), spec)
    given = compute_fid_kid(images, brighter(images), spec, feature_fn=scorer.image_features)
    assert given["fid"] == pytest.approx(loaded["fid"], rel=1e-9) and given["kid"] == pytest.approx(loaded["kid"])
    assert loaded["spec"]["image_size"] == 24
    native = compute_fid_kid(images, brighter(images), clip_fid_spec(toy_clip_dir))
    assert native["fid"] != loaded["fid"]  # the declared resize really happened


def test_fewer_images_than_feature_dimensions_is_a_clear_error_not_a_complex_number(toy_clip_dir, images):
    few = images[:EMBED_DIM]  # n == dim: singular covariance
    with pytest.raises(ValueError, match=f"at least {EMBED_DIM + 1} images per set"):
        compute_fid_kid(few, brighter(few), clip_fid_spec(toy_clip_dir))
    skipped = compute_fid_kid(few, brighter(few), clip_fid_spec(toy_clip_dir, fid_min_images="skip"))
    assert skipped["fid"] is None and skipped["kid"] > 0 and skipped["spec"]["fid_min_images"] == "skip"


def test_inception_offline_fails_at_once_naming_the_file(tmp_path, monkeypatch):
    import cleanfid.fid

    def no_compute(*args, **kwargs):
        raise AssertionError("features were computed before the check")

    monkeypatch.setattr(cleanfid.fid, "get_folder_features", no_compute)
    tiny = np.zeros((4, 8, 8, 3), np.uint8)
    spec = FidSpec(inception_dir=str(tmp_path), fid_min_images="skip")
    with pytest.raises(ModelUnavailableError) as err:
        compute_fid_kid(tiny, tiny, spec)
    message = str(err.value)
    assert str(tmp_path / INCEPTION_FILE) in message and "clean-fid looks in /tmp/" in message
    assert "Download http" in message
    with pytest.raises(ValueError, match="at least 2049 images"):  # Inception's 2048 dims, known up front
        compute_fid_kid(tiny, tiny, FidSpec(inception_dir=str(tmp_path)))


def test_device_and_workers_overrides_reach_clean_fid(toy_clip_dir, images, monkeypatch):
    import cleanfid.fid

    seen = []
    original = cleanfid.fid.get_folder_features

    def spy(fdir, **kwargs):
        seen.append((kwargs["device"], kwargs["num_workers"], kwargs["batch_size"]))
        return original(fdir, **kwargs)

    monkeypatch.setattr(cleanfid.fid, "get_folder_features", spy)
    result = compute_fid_kid(images, brighter(images), clip_fid_spec(toy_clip_dir, num_workers=1, batch_size=5))
    assert seen == [(torch.device("cpu"), 1, 5)] * 2 and result["fid"] > 0
    seen.clear()
    compute_fid_kid(images, images, clip_fid_spec(toy_clip_dir))
    assert seen == [(torch.device("cpu"), 0, 32)] * 2  # our defaults, not clean-fid's cuda / 12 workers
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        compute_fid_kid(images, images, clip_fid_spec(toy_clip_dir, device="cuda"))


def test_bad_fid_spec_and_inputs_are_refused_before_compute(toy_clip_dir, images):
    with pytest.raises(ValidationError, match="needs clip"):
        FidSpec(feature_extractor="clip_image")
    with pytest.raises(ValidationError, match="takes 299 only"):
        FidSpec(image_size=64)
    with pytest.raises(ValidationError, match="legacy_tensorflow"):
        clip_fid_spec(toy_clip_dir, mode="legacy_tensorflow")
    with pytest.raises(ValidationError):
        FidSpec(feature_extractor="dino")
    spec = clip_fid_spec(toy_clip_dir)
    with pytest.raises(ValueError, match="uint8"):
        compute_fid_kid(images.astype(np.float32), images, spec)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        compute_fid_kid(images, "/no/such/folder", spec)
    with pytest.raises(ValueError, match="only used with feature_extractor 'clip_image'"):
        compute_fid_kid(images, images, FidSpec(), feature_fn=lambda x: x)


class _StandInLayers(torch.nn.Module):
    """Maps 3 x 299 x 299 inputs to 2048 features, like the real network's ``layers``."""

    def __init__(self):
        super().__init__()
        self.project = torch.nn.Linear(3 * 16 * 16, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == 299, "clean-fid must resize to 299 first"
        return self.project(torch.nn.functional.adaptive_avg_pool2d(x, 16).flatten(1))


class _StandInInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _StandInLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def test_inception_path_runs_clean_fid_on_a_local_torchscript_file(tmp_path, images):
    """Real weights cannot be downloaded here: a stand-in TorchScript file of the same shape runs the same path."""
    torch.manual_seed(0)
    torch.jit.script(_StandInInception()).save(str(tmp_path / INCEPTION_FILE))
    spec = FidSpec(inception_dir=str(tmp_path), fid_min_images="skip")  # 2049+ images would be slow here
    result = compute_fid_kid(images[:6], brighter(images[:6]), spec, reference="toy renders")
    same = compute_fid_kid(images[:6], images[:6], spec)
    assert result["fid"] is None and result["kid"] > abs(same["kid"])
    declared = result["spec"]
    assert declared["weights"] == INCEPTION_FILE and declared["feature_dim"] == 2048 and declared["image_size"] == 299
    assert "inception_dir" not in declared and declared["reference"] == "toy renders"


def test_scipy_without_sqrtm_disp_gives_a_clear_error(toy_clip_dir, images, monkeypatch):
    """SciPy 1.18 dropped sqrtm's ``disp`` argument, which clean-fid 0.1.35 passes (seen on a GPU machine)."""
    import cleanfid.fid
    from scipy import linalg

    def sqrtm_without_disp(matrix):
        return linalg.sqrtm(matrix)

    monkeypatch.setattr(cleanfid.fid, "linalg", SimpleNamespace(sqrtm=sqrtm_without_disp))
    with pytest.raises(RuntimeError, match=r"install scipy<1\.18"):
        compute_fid_kid(images, brighter(images), clip_fid_spec(toy_clip_dir))


def test_hugging_face_text_parts_missing_offline_fail_at_once(tmp_path):
    with pytest.raises(ModelUnavailableError, match="hf download timm/ViT-B-16-SigLIP"):
        load_clip_scorer(ClipScoreSpec(model="ViT-B-16-SigLIP", pretrained=None, cache_dir=str(tmp_path)))
