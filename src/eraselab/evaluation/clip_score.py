"""CLIP score with a declared model, weights and scale: the toy world's tiny CLIP or any open_clip model.

Papers disagree on "CLIP score" (ViT-B/32 vs ViT-L/14, scale 100 vs 2.5, clamped or not), so the spec travels
with every number: ``scorer.declaration()`` goes into the metrics file.

Weights are offline-only and safetensors-only: a pretrained tag resolves to the ``.safetensors`` file open_clip
would fetch from the Hugging Face hub, looked up in the local hub cache without network access; open_clip then
loads that local file with ``safetensors.torch.load_file``. Nothing is unpickled.

Importing this module and validating a ``ClipScoreSpec`` is cheap (no torch, no open_clip import), so params
validation can embed it; tags are checked against open_clip's table when the scorer is loaded.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

log = logging.getLogger(__name__)

TOY = "toy"  # the toy world's tiny CLIP (eraselab.models.clip), saved by `eraselab clip`
FORMULA = "scale * max(cos(image_embedding, text_embedding), 0)"  # Hessel et al. 2021 with scale 100
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")


@lru_cache(maxsize=1)
def _config_files() -> dict[str, Path]:
    """open_clip's bundled architecture configs (what its ``list_models`` scans), found without importing
    open_clip (which imports torch)."""
    files = {}
    for folder in importlib.util.find_spec("open_clip").submodule_search_locations:
        for config in Path(folder, "model_configs").glob("*.json"):
            if {"embed_dim", "vision_cfg", "text_cfg"} <= json.loads(config.read_text()).keys():
                files[config.stem] = config
    return files


def open_clip_models() -> list[str]:
    return sorted(_config_files(), key=str.lower)


class ClipScoreSpec(BaseModel):
    """Which CLIP scores images, with which weights, on which scale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "ViT-L-14"  # "toy" or an open_clip architecture name ("ViT-L/14" is accepted as "ViT-L-14")
    # open_clip: a pretrained tag (e.g. "openai"), a local .safetensors file, or None for random weights (tests);
    # toy: the directory `eraselab clip` wrote (config.json + open_clip.safetensors).
    pretrained: str | None = "openai"
    scale: float = Field(100.0, gt=0)
    cache_dir: str | None = None  # Hugging Face hub cache holding tagged weights; None: the hub's default

    @field_validator("model", mode="before")
    @classmethod
    def _canonical_name(cls, value):
        return value.replace("/", "-") if isinstance(value, str) else value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        valid = [TOY, *open_clip_models()]
        if value not in valid:
            raise ValueError(f"unknown CLIP model {value!r}; valid choices: {', '.join(valid)}")
        return value

    @model_validator(mode="after")
    def _usable_weights(self):
        if self.model == TOY and not self.pretrained:
            raise ValueError("model 'toy' needs pretrained: the directory `eraselab clip` wrote (e.g. models/clip)")
        if self.model != TOY and self.pretrained and self.pretrained.lower().endswith(PICKLE_SUFFIXES):
            raise ValueError(f"pretrained {self.pretrained!r}: only .safetensors weights are loaded (never pickles); "
                             f"give an open_clip tag such as 'openai' or a .safetensors file")
        return self

    @property
    def pretrained_kind(self) -> str:
        """'toy_dir', 'random', 'file' (a .safetensors path) or 'tag'."""
        if self.model == TOY:
            return "toy_dir"
        if self.pretrained is None:
            return "random"
        return "file" if self.pretrained.endswith(".safetensors") else "tag"

    def declaration(self) -> dict:
        """What a metrics file records about this CLIP score."""
        return {"model": self.model, "pretrained": self.pretrained, "scale": self.scale, "formula": FORMULA}


def _unavailable(message: str) -> Exception:
    from eraselab.models.loading import ModelUnavailableError

    return ModelUnavailableError(message)


def tag_config(model: str, tag: str) -> dict:
    """open_clip's record of a pretrained tag; an unknown tag names the valid ones."""
    from eraselab import _compat  # noqa: F401  (before open_clip imports torchvision)
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    cfg = get_pretrained_cfg(model, tag)
    if not cfg:
        tags = list_pretrained_tags_by_model(model)
        raise ValueError(f"pretrained {tag!r} is no open_clip tag of {model} (nor a .safetensors file); "
                         f"valid tags: {', '.join(tags) or 'none (use a .safetensors file)'}")
    return cfg


def cached_tag_weights(model: str, tag: str, cache_dir: str | None = None) -> str:
    """The local .safetensors file of an open_clip pretrained tag, found without network access."""
    from huggingface_hub import constants, try_to_load_from_cache

    repo_id, filename = os.path.split(tag_config(model, tag).get("hf_hub", ""))
    if not repo_id:
        raise _unavailable(f"open_clip tag {tag!r} of {model} has no Hugging Face hub weights; only hub-hosted "
                           f"safetensors weights are supported: pass a local .safetensors file")
    # open_clip's own naming of the safetensors twin of a pickled checkpoint
    if not filename or filename == "open_clip_pytorch_model.bin":
        filename = "open_clip_model.safetensors"
    elif filename.endswith(PICKLE_SUFFIXES):
        filename = filename.rsplit(".", 1)[0] + ".safetensors"
    found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
    if isinstance(found, str) and os.path.isfile(found):
        return found
    raise _unavailable(
        f"CLIP weights for {model} pretrained={tag!r} are not in the local Hugging Face cache "
        f"({cache_dir or constants.HF_HUB_CACHE}). On a machine with network access run "
        f"`hf download {repo_id} {filename}` and copy the cache here (or set cache_dir), or download that file "
        f"and set pretrained to its local .safetensors path.")


def require_cached_hf_parts(model: str, cache_dir: str | None = None) -> None:
    """Configs with a Hugging Face tokenizer or text tower fetch those at build time: check the cache first,
    so that offline the error is immediate and says what to download (not half a minute of retries)."""
    from huggingface_hub import constants, try_to_load_from_cache

    text_cfg = json.loads(_config_files()[model].read_text()).get("text_cfg", {})
    needed = {text_cfg.get("hf_tokenizer_name"): "tokenizer_config.json", text_cfg.get("hf_model_name"): "config.json"}
    for repo_id, filename in needed.items():
        if repo_id and not isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str):
            raise _unavailable(
                f"CLIP model {model} builds its text side from the Hugging Face repo {repo_id}, which is not in the "
                f"local cache ({cache_dir or constants.HF_HUB_CACHE}): on a machine with network access run "
                f"`hf download {repo_id}` and copy the cache here, or choose another model")


class SpecClipScorer:
    """CLIP score defined once over any backend's normalised image/text embeddings (torch tensors on CPU)."""

    spec: ClipScoreSpec
    image_size: int

    def image_features(self, images: np.ndarray):  # N x H x W x 3 in [0, 255] -> N x D, unit norm
        raise NotImplementedError

    def text_features(self, texts: list[str]):
        raise NotImplementedError

    def score(self, images_u8: np.ndarray, prompts: list[str]) -> np.ndarray:
        if len(images_u8) != len(prompts):
            raise ValueError(f"CLIP score needs one prompt per image: got {len(images_u8)} images, "
                             f"{len(prompts)} prompts")
        cos = (self.image_features(images_u8) * self.text_features(list(prompts))).sum(-1)
        return (self.spec.scale * cos.clamp(min=0)).numpy()

    def declaration(self) -> dict:
        return {**self.spec.declaration(), "image_size": self.image_size}


class ToyClipScorer(SpecClipScorer):
    """The toy world's tiny CLIP (``eraselab.models.clip.ClipScorer``) under a declared scale."""

    def __init__(self, toy, spec: ClipScoreSpec):
        self.toy, self.spec, self.image_size = toy, spec, toy.image_size

    def image_features(self, images: np.ndarray):
        return self.toy.image_features(np.asarray(images))

    def text_features(self, texts: list[str]):
        return self.toy.text_features(texts)


class OpenClipScorer(SpecClipScorer):
    """An open_clip model with its own evaluation preprocessing (resize, centre crop, normalisation)."""

    def __init__(self, model, model_name: str, spec: ClipScoreSpec, device, batch_size: int = 64):
        import open_clip
        from open_clip.transform import PreprocessCfg, image_transform_v2

        self.model, self.spec, self.device, self.batch_size = model.eval(), spec, device, batch_size
        cfg = PreprocessCfg(**open_clip.get_model_preprocess_cfg(model))
        self.preprocess = image_transform_v2(cfg, is_train=False)
        self.image_size = cfg.size if isinstance(cfg.size, int) else int(cfg.size[0])
        self.tokenizer = open_clip.get_tokenizer(model_name)

    def image_features(self, images: np.ndarray):
        import torch
        from PIL import Image

        # PIL in, as CLIP was evaluated; float input (clean-fid batches) is rounded back to 8 bits
        images_u8 = np.clip(np.rint(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)
        feats = []
        with torch.no_grad():
            for start in range(0, len(images_u8), self.batch_size):
                chunk = images_u8[start : start + self.batch_size]
                pixels = torch.stack([self.preprocess(Image.fromarray(img)) for img in chunk])
                feats.append(self.model.encode_image(pixels.to(self.device), normalize=True).float().cpu())
        return torch.cat(feats)

    def text_features(self, texts: list[str]):
        import torch

        with torch.no_grad():
            tokens = self.tokenizer(texts).to(self.device)
            return self.model.encode_text(tokens, normalize=True).float().cpu()


def load_clip_scorer(spec: ClipScoreSpec, device="cpu") -> SpecClipScorer:
    """A scorer with ``score(images_u8, prompts)``, ``image_features``, ``text_features``, ``declaration()``.

    ``device``: "cpu", "cuda", "auto" or a ``torch.device``. Missing weights raise ``ModelUnavailableError``
    saying what to download and where, before anything is built.
    """
    import torch

    from eraselab import _compat  # noqa: F401  (before open_clip imports torchvision)
    from eraselab.models.loading import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    kind = spec.pretrained_kind
    if kind == "toy_dir":
        from eraselab.models.clip import load_clip

        if dev.type != "cpu":
            raise ValueError(f"the toy CLIP runs on CPU only; got device {dev}")
        path = Path(spec.pretrained)
        if not (path / "open_clip.safetensors").is_file():
            raise _unavailable(f"toy CLIP weights {path / 'open_clip.safetensors'} missing: build them with "
                               f"`eraselab clip` (or point pretrained at that directory)")
        return ToyClipScorer(load_clip(path), spec)

    import open_clip

    tag_cfg = tag_config(spec.model, spec.pretrained) if kind == "tag" else {}
    require_cached_hf_parts(spec.model, spec.cache_dir)
    if kind == "tag":
        weights = cached_tag_weights(spec.model, spec.pretrained, spec.cache_dir)
    elif kind == "file":
        weights = spec.pretrained
        if not os.path.isfile(weights):
            raise _unavailable(f"CLIP weights file {weights} (pretrained of {spec.model}) does not exist: put the "
                               f"model's open_clip .safetensors checkpoint there")
    else:
        weights = None
        log.warning("CLIP %s with random weights (pretrained=None): scores are meaningless outside tests", spec.model)
    model = open_clip.create_model(
        spec.model,
        pretrained=weights,  # a local .safetensors path: open_clip loads it with safetensors, no download
        device=dev,
        # a tag's activation and preprocessing are part of its weights; open_clip only warns when they differ
        force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
        force_preprocess_cfg={k: v for k, v in tag_cfg.items() if k in ("mean", "std", "interpolation", "resize_mode")},
        pretrained_text=False,  # never fetch separate tower weights
        pretrained_image=False,
        require_pretrained=weights is not None,
    )
    return OpenClipScorer(model, spec.model, spec, dev)
