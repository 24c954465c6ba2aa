"""Stable Diffusion v1.4's published component configs as data, random-weight pipelines of that shape, and
a writer for the exact folder layout of the hub's ``CompVis/stable-diffusion-v1-4``.

Methods and attacks are developed on the toy model; these let tests and benchmarks run them on modules of
SD v1.4's real shape and layer names (widths, heads, cross-attention dim, block types), so a shape or a
layer-name bug cannot hide behind the toy's small sizes. ``layers`` trims depth only (blocks per level,
text-encoder layers): every module that remains has its published shape and name. Nothing here downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from eraselab import _compat  # noqa: F401  (before anything imports torchvision)
import diffusers
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from eraselab.io import atomic_dir
from eraselab.models.tokenizer import BOS, EOS, MAX_LENGTH, VOCAB_SIZE, build_clip_tokenizer

# --- the published configs (the hub folder's config files, without their bookkeeping keys) --------------
UNET = {
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
VAE = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
VAE_SCALING_FACTOR = 0.18215  # not in the hub's vae/config.json: diffusers' default, which SD v1 was trained with
VAE_DOWNSAMPLING = 8  # 2 ** (4 levels - 1)
TEXT_ENCODER = {  # CLIP ViT-L/14's text tower; the legacy special-token ids are what the hub file says
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
    "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "projection_dim": 768, "torch_dtype": "float32", "vocab_size": 49408,
}
SCHEDULER = {  # PNDM as shipped; clip_sample false matters when a DDIM sampler is built from this config
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None, "clip_sample": False,
}
FEATURE_EXTRACTOR = {
    "crop_size": 224, "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True, "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224,
}
MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.2.3",
    "feature_extractor": ["transformers", "CLIPFeatureExtractor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
_ADDED_TOKEN = {"__type": "AddedToken", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
TOKENIZER_CONFIG = {
    "add_prefix_space": False, "bos_token": {**_ADDED_TOKEN, "content": BOS}, "do_lower_case": True,
    "eos_token": {**_ADDED_TOKEN, "content": EOS}, "errors": "replace", "model_max_length": MAX_LENGTH,
    "name_or_path": "openai/clip-vit-large-patch14", "pad_token": EOS,
    "special_tokens_map_file": "./special_tokens_map.json", "tokenizer_class": "CLIPTokenizer",
    "unk_token": {**_ADDED_TOKEN, "content": EOS},
}
SPECIAL_TOKENS_MAP = {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}

# SD v1's checkpoints predate diffusers' Attention class: the VAE's mid-block attention keeps its old names
# (diffusers renames them on load), and the text encoder's keys carry the `text_model.` prefix plus the
# position_ids buffer that transformers 4.2x saved.
VAE_LEGACY_ATTENTION = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
TEXT_PREFIX = "text_model."


def unet_config(sample_size: int = 64, layers: int | None = None) -> dict:
    """``sample_size``: the latent side (64 = 512 px); ``layers``: resnet/attention pairs per level (2)."""
    return {**UNET, "sample_size": sample_size, "layers_per_block": layers or UNET["layers_per_block"]}


def vae_config(image_size: int = 512, layers: int | None = None) -> dict:
    return {**VAE, "sample_size": image_size, "layers_per_block": layers or VAE["layers_per_block"]}


def text_encoder_config(layers: int | None = None) -> dict:
    return {**TEXT_ENCODER, "num_hidden_layers": layers or TEXT_ENCODER["num_hidden_layers"]}


def build_sd14_like(sample_size: int = 8, seed: int = 0, layers: int | None = None,
                    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                    tokenizer=None) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline with SD v1.4's component classes and configs, random weights (seeded,
    the classes' own initialisation), the real CLIP tokenizer and SD's scheduler.

    ``sample_size``: latent side (8 -> 64 px images; 64 -> SD's 512 px). ``layers``: trims the depth of all
    three networks (UNet and VAE blocks per level, text-encoder layers); None keeps SD v1.4's. ``tokenizer``:
    a CLIPTokenizer to use instead of building CLIP's from open_clip's vocabulary file."""
    if sample_size < 8 or sample_size % 8:
        raise ValueError(f"sample_size must be a multiple of 8 (the UNet downsamples 3 times), got {sample_size}")
    if layers is not None and layers < 1:
        raise ValueError(f"layers must be None (SD v1.4's depth) or >= 1, got {layers}")
    torch.manual_seed(seed)
    with torch.device(device):  # initialise in place: no CPU copy of a GPU-sized model
        unet = UNet2DConditionModel.from_config(unet_config(sample_size, layers))
        vae = AutoencoderKL.from_config({**vae_config(sample_size * VAE_DOWNSAMPLING, layers),
                                         "scaling_factor": VAE_SCALING_FACTOR})
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config(layers)))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer or build_clip_tokenizer(), unet=unet,
        scheduler=PNDMScheduler.from_config(SCHEDULER), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)


def text_encoder_hub_state(text_encoder) -> dict[str, torch.Tensor]:
    """The text encoder's tensors under the hub checkpoint's names (``text_model.`` prefix, position_ids)."""
    state = {TEXT_PREFIX + k: v for k, v in text_encoder.state_dict().items()}
    state[TEXT_PREFIX + "embeddings.position_ids"] = torch.arange(text_encoder.config.max_position_embeddings)[None]
    return state


def vae_hub_state(vae) -> dict[str, torch.Tensor]:
    """The VAE's tensors under the hub checkpoint's names (the mid-block attention's legacy names)."""
    out = {}
    for key, value in vae.state_dict().items():
        if ".mid_block.attentions." in key:
            for new, old in VAE_LEGACY_ATTENTION.items():
                key = key.replace(f".{new}.", f".{old}.")
        out[key] = value
    return out


def _save(state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, path, metadata={"format": "pt"})


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def write_hub_layout(pipe: StableDiffusionPipeline, out: str | Path) -> Path:
    """Write ``pipe`` as the hub's SD v1.4 folder is laid out: model_index.json naming all seven components,
    scheduler/, text_encoder/ (config.json + model.safetensors, ``text_model.``-prefixed keys), tokenizer/
    (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json; no tokenizer.json), unet/ and
    vae/ (config.json + diffusion_pytorch_model.safetensors), feature_extractor/; no safety_checker/ folder
    (as after a download that excludes its weights). Written to a temp folder, then renamed into place."""
    unet, vae, text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
    with atomic_dir(out) as tmp:
        _write_json(tmp / "model_index.json", MODEL_INDEX)
        _write_json(tmp / "scheduler" / "scheduler_config.json",
                    {"_class_name": "PNDMScheduler", "_diffusers_version": "0.7.0.dev0", **SCHEDULER})
        _write_json(tmp / "feature_extractor" / "preprocessor_config.json", FEATURE_EXTRACTOR)
        # configs come from the modules themselves, so a depth-trimmed pipeline writes what it is
        unet_keys = {k: unet.config[k] for k in UNET}
        # diffusers resets sample_size < 64 to 64 for UNet configs older than 0.9.0: a small test UNet
        # must say a newer version to keep its size (the hub's 64 is unaffected either way)
        version = "0.2.2" if unet.config.sample_size >= 64 else diffusers.__version__
        _write_json(tmp / "unet" / "config.json",
                    {"_class_name": "UNet2DConditionModel", "_diffusers_version": version, **unet_keys})
        _save(unet.state_dict(), tmp / "unet" / "diffusion_pytorch_model.safetensors")
        vae_keys = {k: vae.config[k] for k in VAE}
        _write_json(tmp / "vae" / "config.json",
                    {"_class_name": "AutoencoderKL", "_diffusers_version": "0.2.2", **vae_keys})
        _save(vae_hub_state(vae), tmp / "vae" / "diffusion_pytorch_model.safetensors")
        te_keys = {k: getattr(text_encoder.config, k) for k in TEXT_ENCODER
                   if k not in ("architectures", "torch_dtype")}
        _write_json(tmp / "text_encoder" / "config.json",
                    {"_name_or_path": "openai/clip-vit-large-patch14", **TEXT_ENCODER, **te_keys,
                     "transformers_version": "4.22.0.dev0"})
        _save(text_encoder_hub_state(text_encoder), tmp / "text_encoder" / "model.safetensors")
        _write_tokenizer(pipe.tokenizer, tmp / "tokenizer")
    return Path(out)


def _write_tokenizer(tokenizer, folder: Path) -> None:
    """vocab.json + merges.txt as CLIP's BPE files are (transformers 5's save_pretrained writes only
    tokenizer.json, which the hub folder does not have), taken from the tokenizer's own BPE model."""
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE" or len(model["vocab"]) != VOCAB_SIZE:
        raise ValueError(f"write_hub_layout needs CLIP's BPE tokenizer ({VOCAB_SIZE} tokens); the pipeline has a "
                         f"{model.get('type')} model with {len(model.get('vocab', {}))} tokens")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    _write_json(folder / "tokenizer_config.json", TOKENIZER_CONFIG)
    _write_json(folder / "special_tokens_map.json", SPECIAL_TOKENS_MAP)


# One-step budgets for same-architecture smoke runs (tests/test_sd14_shapes.py on CPU,
# benchmarks/sd14_cuda_paths.py on a GPU): every code path of a method or attack runs once, nothing more.
METHOD_BUDGETS = {
    "none": {},
    "esd_x": {"steps": 1, "batch_size": 1, "trajectory_steps": 2, "lr": 1e-3},
    "esd_u": {"steps": 1, "batch_size": 1, "trajectory_steps": 2, "lr": 1e-3},
    "uce": {},
    "sld": {"preset": "max"},
    "negative_prompt": {},
    # threshold -1: verification always passes, so the circumvent (LoRA training) step runs too
    "darkminer": {"rounds": 1, "patience": 1, "pool_size": 1, "batch_size": 1, "mine_steps": 1, "verify_samples": 1,
                  "circumvent_steps": 1, "sample_steps": 2, "sample_scheduler": "pndm", "threshold": -1.0},
    "steerdiff": {"steps": 5},
    "advunlearn": {"iterations": 2, "batch_size": 1, "retain_batch": 1, "attack_steps": 1, "warmup": 1,
                   "trajectory_steps": 2},
}
# the vocabulary scope SD's profile uses: the full 49,408-token table
ATTACK_BUDGETS = {
    "no_attack": {},
    "unlearndiffatk": {"tokens": 1, "timesteps": 1, "steps_per_timestep": 1, "vocabulary": "full"},
    "p4d_n": {"free_tokens": 1, "iterations": 1, "eval_every": 1, "vocabulary": "full"},
    "p4d_k": {"every": 3, "iterations": 1, "eval_every": 1, "vocabulary": "full"},
    "ring_a_bell": {"length": 2, "population": 2, "generations": 1, "pairs": 1, "vocabulary": "full"},
    "mma_diffusion": {"length": 2, "steps": 1, "top_k": 2, "candidates": 2, "vocabulary": "full"},
    "cce": {"images": 1, "steps": 1, "batch_size": 1},
    "sneakyprompt": {"queries": 2, "batch": 2, "vocabulary": "full"},
}
