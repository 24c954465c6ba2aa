"""The text encoder, opened up at the token-embedding level.

transformers 5's ``CLIPTextModel.forward`` takes token ids only (no ``inputs_embeds``). Attacks (soft and
relaxed prompts), textual inversion and embedding mining need the same computation from token embeddings,
differentiably: these functions run the model's own embedding, encoder and final-norm modules in the
order its forward does, so ids and their embedding rows give identical outputs.
"""

from __future__ import annotations

import torch
from transformers.masking_utils import create_causal_mask


def tokenize(tokenizer, prompts: list[str], device=None) -> torch.Tensor:
    """Prompts -> token ids (N x 77), padded and truncated as the pipeline does."""
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return ids if device is None else ids.to(device)


def vocabulary_matrix(text_encoder) -> torch.Tensor:
    """The token-embedding table (V x d)."""
    return text_encoder.embeddings.token_embedding.weight


def token_embeddings(text_encoder, ids: torch.Tensor) -> torch.Tensor:
    return text_encoder.embeddings.token_embedding(ids)


def encode_token_embeddings(text_encoder, embeds: torch.Tensor) -> torch.Tensor:
    """Token embeddings (N x 77 x d_token) -> last hidden states (N x 77 x d), as the UNet receives them."""
    hidden = text_encoder.embeddings(inputs_embeds=embeds.to(text_encoder.dtype))
    mask = create_causal_mask(config=text_encoder.config, inputs_embeds=hidden, attention_mask=None,
                              past_key_values=None)
    hidden = text_encoder.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
    return text_encoder.final_layer_norm(hidden)
