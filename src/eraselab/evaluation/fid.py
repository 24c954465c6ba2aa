"""FID and KID between two image sets through clean-fid, with the feature extractor and reference declared.

The maths is clean-fid's (``get_folder_features``, ``fid_from_feats``, ``kernel_distance``); this module picks
the feature extractor, overrides clean-fid's GPU-first defaults (``device=cuda``, ``num_workers=12``), and turns
its silent traps into clear errors:

- Inception: clean-fid loads a TorchScript file and downloads it when missing; offline that fails deep inside.
  Here a missing file fails at once, naming the file, where it is looked for and where to get it.
- FID with no more images than feature dimensions: the covariance is singular and the matrix square root turns
  complex. Here that is refused up front (KID, which has no such limit, is still computed when FID is skipped
  on purpose: ``fid_min_images="skip"``).
- SciPy 1.18 removed ``sqrtm(disp=...)``, which clean-fid 0.1.35 passes: a clear error asks for scipy<1.18.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from eraselab.errors import MissingInputError
from eraselab.evaluation.clip_score import ClipScoreSpec, load_clip_scorer

INCEPTION_FILE = "inception-2015-12-05.pt"  # the name clean-fid downloads and loads
INCEPTION_SIZE = 299  # the TorchScript network asserts this input size in "clean" mode
INCEPTION_DIM = 2048


def cleanfid_inception_dir() -> str:
    """Where clean-fid itself keeps the Inception file (features.feature_extractor hard-codes it)."""
    return "./" if platform.system() == "Windows" else "/tmp"


class FidSpec(BaseModel):
    """How FID/KID are measured; ``compute_fid_kid`` returns it, resolved, under "spec" for the metrics file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_extractor: Literal["inception", "clip_image"] = "inception"
    clip: ClipScoreSpec | None = None  # the CLIP whose image embeddings are the features (clip_image only)
    mode: Literal["clean", "legacy_tensorflow"] = "clean"  # clean-fid's resize mode (legacy_tensorflow: inception)
    # inception: 299 (the network's size). clip_image: None keeps the images' size (CLIP preprocesses them
    # itself); an int resizes first with clean-fid's "clean" resize (PIL bicubic on float pixels).
    image_size: int | None = Field(None, gt=0)
    inception_dir: str | None = None  # folder holding inception-2015-12-05.pt; None: where clean-fid looks
    device: str = "cpu"  # clean-fid defaults to cuda
    num_workers: int = Field(0, ge=0)  # clean-fid defaults to 12 dataloader processes
    batch_size: int = Field(32, gt=0)
    kid_subsets: int = Field(100, gt=0)
    kid_subset_size: int = Field(1000, ge=2)
    seed: int = Field(0, ge=0)  # KID draws random subsets
    fid_min_images: Literal["error", "skip"] = "error"  # too few images for FID: fail, or report fid None

    @model_validator(mode="after")
    def _consistent(self):
        if self.feature_extractor == "clip_image" and self.clip is None:
            raise ValueError("feature_extractor 'clip_image' needs clip: a ClipScoreSpec naming the CLIP model")
        if self.feature_extractor == "inception":
            if self.clip is not None:
                raise ValueError("clip is only used with feature_extractor 'clip_image'; valid: inception, clip_image")
            if self.image_size not in (None, INCEPTION_SIZE):
                raise ValueError(f"image_size {self.image_size} with inception: clean-fid's Inception takes "
                                 f"{INCEPTION_SIZE} only (leave image_size unset)")
        if self.mode == "legacy_tensorflow" and self.feature_extractor != "inception":
            raise ValueError("mode 'legacy_tensorflow' resizes inside Inception; with clip_image use mode 'clean'")
        return self

    @property
    def resolved_image_size(self) -> int | str:
        if self.feature_extractor == "inception":
            return INCEPTION_SIZE
        return self.image_size or "native"

    def inception_path(self) -> Path:
        return Path(self.inception_dir or cleanfid_inception_dir()) / INCEPTION_FILE


def _inception(spec: FidSpec, device: torch.device) -> Callable:
    path = spec.inception_path()
    if not path.is_file():
        from cleanfid.downloads_helper import inception_url

        from eraselab.models.loading import ModelUnavailableError

        raise ModelUnavailableError(
            f"FID feature extractor 'inception' needs clean-fid's TorchScript InceptionV3 file {path} "
            f"(clean-fid looks in {cleanfid_inception_dir()}/ unless inception_dir is set). Download {inception_url} "
            f"on a machine with network access and put it there, or use feature_extractor 'clip_image'.")
    from cleanfid.inception_torchscript import InceptionV3W

    # download=False: clean-fid would otherwise try the network; resize_inside is what its legacy mode means
    model = InceptionV3W(str(path.parent), download=False, resize_inside=spec.mode == "legacy_tensorflow")
    return model.to(device).eval()


def _clip_features(image_features: Callable) -> Callable:
    """clean-fid hands N x 3 x H x W floats in [0, 255] on its device; CLIP scorers take N x H x W x 3 arrays."""

    import torch

    def features(batch: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(image_features(batch.permute(0, 2, 3, 1).cpu().numpy()))

    return features


def _keep_size(image: np.ndarray) -> np.ndarray:
    return image


def _resizer(spec: FidSpec):
    """clean-fid's resize per mode for inception; for clip_image, none or clean-fid's clean resize."""
    if spec.feature_extractor == "inception":
        return None
    if spec.image_size is None:
        return _keep_size
    from cleanfid.resize import make_resizer

    return make_resizer("PIL", False, "bicubic", (spec.image_size, spec.image_size))


def _image_count(images: np.ndarray | str | Path, name: str) -> int:
    """Check one input set (an N x H x W x 3 uint8 array or an image folder) and count its images."""
    from cleanfid.utils import EXTENSIONS

    if isinstance(images, (str, Path)):
        folder = Path(images)
        if not folder.is_dir():
            raise MissingInputError(f"image folder {folder} (set {name}) does not exist")
        # the same suffixes clean-fid's get_folder_features collects, recursively
        return sum(1 for p in folder.rglob("*") if p.suffix.lower()[1:] in EXTENSIONS)
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"set {name}: expected N x H x W x 3 uint8 images or a folder, "
                         f"got {array.dtype} {array.shape}")
    return len(array)


def _as_folder(images: np.ndarray | str | Path, scratch: Path, name: str) -> str:
    """A folder clean-fid can read: the folder itself, or the array written there as lossless PNGs."""
    if isinstance(images, (str, Path)):
        return str(images)
    from PIL import Image

    folder = scratch / name
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:06d}.png")
    return str(folder)


def _kid(feats_a: np.ndarray, feats_b: np.ndarray, spec: FidSpec) -> float:
    from cleanfid.fid import kernel_distance

    # kernel_distance samples subsets from numpy's global generator: seed it, and leave it as it was
    state = np.random.get_state()
    np.random.seed(spec.seed)
    try:
        kid = kernel_distance(feats_a, feats_b, num_subsets=spec.kid_subsets, max_subset_size=spec.kid_subset_size)
    finally:
        np.random.set_state(state)
    return float(kid)


def _enough_for_fid(dim: int, n_a: int, n_b: int, spec: FidSpec) -> bool:
    """FID needs more images than feature dimensions per set; below that: a clear error, or skip if asked."""
    if min(n_a, n_b) > dim:
        return True
    if spec.fid_min_images == "skip":
        return False
    raise ValueError(
        f"FID needs more images than feature dimensions in each set ({dim}-dim {spec.feature_extractor} features, "
        f"{n_a} and {n_b} images): the covariance is singular and its square root turns complex. Use at least "
        f"{dim + 1} images per set, a lower-dimensional extractor, or fid_min_images: skip (KID has no such limit).")


def _fid(feats_a: np.ndarray, feats_b: np.ndarray, spec: FidSpec) -> float | None:
    from cleanfid.fid import fid_from_feats

    if not _enough_for_fid(feats_a.shape[1], len(feats_a), len(feats_b), spec):
        return None
    try:
        fid = fid_from_feats(feats_a, feats_b)
    except TypeError as err:
        if "disp" not in str(err):
            raise
        import scipy

        # clean-fid 0.1.35 calls scipy.linalg.sqrtm(..., disp=False); SciPy 1.18 removed that argument
        raise RuntimeError(f"clean-fid's FID cannot run with SciPy {scipy.__version__} ({err}): install "
                           f"scipy<1.18 beside clean-fid 0.1.35") from None
    except ValueError as err:  # clean-fid's "Imaginary component" guard
        raise ValueError(f"FID matrix square root is not real ({err}): the feature covariances are near-singular; "
                         f"use more images per set") from None
    if np.iscomplexobj(fid) or not np.isfinite(fid):
        raise ValueError(f"FID came out as {fid}: the feature covariances are near-singular; use more images per set")
    return float(fid)


def compute_fid_kid(images_a: np.ndarray | str | Path, images_b: np.ndarray | str | Path, spec: FidSpec,
                    feature_fn: Callable | None = None, reference: str | None = None) -> dict:
    """FID and KID of set ``a`` against reference set ``b`` (uint8 N x H x W x 3 arrays or image folders).

    ``feature_fn``: for clip_image, an already loaded scorer's ``image_features`` for ``spec.clip`` (saves a
    second load); by default the CLIP is loaded from ``spec.clip``. ``reference`` names set ``b`` in the result.
    """
    if feature_fn is not None and spec.feature_extractor != "clip_image":
        raise ValueError("feature_fn is only used with feature_extractor 'clip_image'; inception is clean-fid's own")
    from eraselab import _compat  # noqa: F401  (before clean-fid imports torchvision)
    from eraselab.models.loading import resolve_device

    n_a, n_b = _image_count(images_a, "a"), _image_count(images_b, "b")
    if min(n_a, n_b) < 2:
        raise ValueError(f"FID/KID need at least 2 images per set; got {n_a} (a) and {n_b} (b)")
    device = resolve_device(spec.device)
    if spec.feature_extractor == "inception":
        _enough_for_fid(INCEPTION_DIM, n_a, n_b, spec)  # the dimension is known: fail before any compute
        model, declared = _inception(spec, device), {"weights": INCEPTION_FILE}
    else:
        if feature_fn is None:
            scorer = load_clip_scorer(spec.clip, device)
            feature_fn, declared = scorer.image_features, {"clip": scorer.declaration()}
        else:
            declared = {"clip": spec.clip.declaration()}
        model = _clip_features(feature_fn)
    from cleanfid.fid import get_folder_features

    options = dict(model=model, num_workers=spec.num_workers, batch_size=spec.batch_size, device=device,
                   mode=spec.mode, custom_fn_resize=_resizer(spec), verbose=False)
    with tempfile.TemporaryDirectory(prefix="eraselab-fid-") as scratch:
        feats_a = get_folder_features(_as_folder(images_a, Path(scratch), "a"), description="FID a", **options)
        feats_b = get_folder_features(_as_folder(images_b, Path(scratch), "b"), description="FID b", **options)
    feats_a, feats_b = feats_a.astype(np.float64), feats_b.astype(np.float64)
    return {
        "fid": _fid(feats_a, feats_b, spec),
        "kid": _kid(feats_a, feats_b, spec),
        "n": {"a": n_a, "b": n_b},
        "spec": {
            **spec.model_dump(exclude={"clip", "inception_dir"}),
            **declared,
            "image_size": spec.resolved_image_size,
            "feature_dim": int(feats_a.shape[1]),
            "reference": reference or (str(images_b) if isinstance(images_b, (str, Path)) else "in-memory array"),
            "implementation": "clean-fid fid_from_feats / kernel_distance",
        },
    }
