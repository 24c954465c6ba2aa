"""UCE (Gandikota et al., 2024): a closed-form edit of every cross-attention key and value projection.

For each projection W (to_k, to_v of every ``attn2``) solve
    min_W'  sum_edit ||W' c_i - W c*_i||^2 + p * sum_keep ||W' c_j - W c_j||^2 + lam * ||W' - W||^2
    =>  W' = W (lam I + M + p C_keep) (lam I + C_edit + p C_keep)^-1,
    M = sum c*_i c_i^T, C_edit = sum c_i c_i^T, C_keep = sum c_j c_j^T
where c_i are the text-encoder outputs of an erase prompt and c*_i the aligned outputs of its anchor
(the prompt with the concept taken out), c_j every token of the retain prompts. One d x d matrix edits
all projections. Token alignment [ours, the original edits a bare concept word]: the encoder is causal,
so tokens before the concept are identical and skipped; the concept's own tokens map to the anchor's
substitute (e.g. "shape") or, for a removed word, to the token before it; later tokens, the end token
and padding map to their anchor counterparts shifted by the length difference.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from eraselab.erasure.base import Defended, ErasureMethod, MethodParams, load_unet_edit, save_unet_edit
from eraselab.generate import encode_prompts
from eraselab.models.text_encoding import tokenize


class UceParams(MethodParams):
    lam: float = Field(0.1, gt=0)  # pull toward the original weights (the original code's `lamb`)
    erase_scale: float = Field(1.0, gt=0)
    preserve_scale: float = Field(1.0, ge=0)  # weight of the retain prompts' tokens
    projections: list[Literal["to_k", "to_v"]] = ["to_k", "to_v"]  # the projections that read the text


def aligned_positions(erase_ids: list[int], anchor_ids: list[int], eot: int) -> list[tuple[int, int]]:
    """(erase position, anchor position) pairs from the first differing token on (see module doc)."""
    n_e, n_a = erase_ids.index(eot), anchor_ids.index(eot)
    prefix = 0
    while prefix < min(n_e, n_a) and erase_ids[prefix] == anchor_ids[prefix]:
        prefix += 1
    suffix = 0  # shared tokens before (and including) the end token
    while (suffix < min(n_e, n_a) + 1 - prefix and erase_ids[n_e - suffix] == anchor_ids[n_a - suffix]):
        suffix += 1
    middle_e, middle_a = range(prefix, n_e + 1 - suffix), range(prefix, n_a + 1 - suffix)
    pairs = []
    for k, j in enumerate(middle_e):
        pairs.append((j, middle_a[k] if len(middle_a) == len(middle_e) else max(prefix - 1, 0)))
    length = len(erase_ids)
    for j in range(n_e + 1 - suffix, length):
        if 0 <= j - n_e + n_a < length:
            pairs.append((j, j - n_e + n_a))
    return pairs


class UCE(ErasureMethod):
    name = "uce"
    Params = UceParams
    edits_weights = True

    @torch.no_grad()
    def erase(self, pipe, concept, params, out, context=None):
        tok = pipe.tokenizer
        # the closed form runs on the CPU in float64 (d x d; exact and device-independent)
        erase = encode_prompts(pipe, list(concept.erase_prompts)).double().cpu()
        anchor = encode_prompts(pipe, list(concept.anchor_prompts)).double().cpu()
        erase_ids = tokenize(tok, list(concept.erase_prompts)).tolist()
        anchor_ids = tokenize(tok, list(concept.anchor_prompts)).tolist()
        d = erase.shape[-1]
        m, c_edit = torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
        n_pairs = 0
        for i, (e_ids, a_ids) in enumerate(zip(erase_ids, anchor_ids)):
            pairs = aligned_positions(e_ids, a_ids, tok.eos_token_id)
            src = erase[i, [j for j, _ in pairs]]
            dst = anchor[i, [k for _, k in pairs]]
            m += dst.T @ src
            c_edit += src.T @ src
            n_pairs += len(pairs)
        keep = encode_prompts(pipe, list(concept.retain_prompts)).double().reshape(-1, d).cpu()
        c_keep = keep.T @ keep
        eye = torch.eye(d, dtype=torch.float64)
        lhs = params.lam * eye + params.erase_scale * m + params.preserve_scale * c_keep
        rhs = params.lam * eye + params.erase_scale * c_edit + params.preserve_scale * c_keep
        edit = torch.linalg.solve(rhs.T, lhs.T).T  # lhs @ rhs^-1 (both d x d)
        names = []
        for name, module in pipe.unet.named_modules():
            if name.endswith(".attn2"):
                for proj in params.projections:
                    layer = getattr(module, proj)
                    layer.weight.copy_((layer.weight.double().cpu() @ edit).to(layer.weight))
                    names.append(f"{name}.{proj}.weight")
        if not names:
            raise ValueError("UCE found no cross-attention (attn2) projections in the UNet")
        save_unet_edit(pipe.unet, names, out)
        return {"edited_tensors": len(names), "edit_pairs": n_pairs, "keep_tokens": len(keep),
                "edit_matrix_deviation": float((edit - eye).norm() / eye.norm())}

    def load(self, pipe, artifact, config):
        return Defended(load_unet_edit(pipe, artifact), self.name, config)
