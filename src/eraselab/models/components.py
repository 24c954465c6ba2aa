"""The toy text-to-image model: Stable Diffusion v1.4's component classes at toy width.

Same classes, same config keys, same noise schedule and scheduler config as SD v1.4, so every method,
attack and evaluator runs unchanged on either. Only widths, depths and the image size shrink.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from eraselab.models.tokenizer import MAX_LENGTH, VOCAB_SIZE

# SD v1.4's noise schedule. clip_sample must be false: clipping latents to [-1, 1] turns samples grey.
SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                   clip_sample=False, steps_offset=1, prediction_type="epsilon")


def build_vae(p, image_size: int) -> AutoencoderKL:
    n = len(p.block_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(p.block_channels), layers_per_block=1, latent_channels=p.latent_channels,
        norm_num_groups=min(8, min(p.block_channels)), sample_size=image_size, mid_block_add_attention=False,
    )


def build_text_encoder(p) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=VOCAB_SIZE, hidden_size=p.hidden_size, intermediate_size=p.intermediate_size,
        num_hidden_layers=p.layers, num_attention_heads=p.heads, max_position_embeddings=MAX_LENGTH,
        hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, projection_dim=p.hidden_size,
    )
    return CLIPTextModel(config)


def build_unet(p, latent_size: int, latent_channels: int, cross_attention_dim: int) -> UNet2DConditionModel:
    n = len(p.block_channels)
    return UNet2DConditionModel(
        sample_size=latent_size, in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=("CrossAttnDownBlock2D",) * n, up_block_types=("CrossAttnUpBlock2D",) * n,
        block_out_channels=tuple(p.block_channels), layers_per_block=p.layers_per_block,
        attention_head_dim=p.attention_head_dim, cross_attention_dim=cross_attention_dim,
        norm_num_groups=min(32, min(p.block_channels) // 2),
    )


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SD_SCHEDULE)


def sampling_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SD_SCHEDULE, set_alpha_to_one=False)
