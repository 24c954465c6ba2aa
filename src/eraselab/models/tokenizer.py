"""The real CLIP BPE tokenizer, built offline from the vocabulary file open_clip ships.

Stable Diffusion's tokenizer is CLIP's: 49,408 tokens, ``<|startoftext|>`` = 49406, ``<|endoftext|>`` =
49407, 77 positions. Building it from the same merges gives identical ids for any English text, so prompts
(and attacks on them) tokenize in the toy world exactly as they would for SD v1.4.
"""

from __future__ import annotations

import gzip

from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77
VOCAB_SIZE = 49408


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    # CLIP uses the first 49152 - 256 - 2 merges: 256 byte tokens x 2 (with and without </w>), the
    # merges, and two specials make 49408.
    merges = [tuple(line.split()) for line in lines[1 : VOCAB_SIZE - 256 * 2 - 2 + 1]]
    bytes_ = list(bytes_to_unicode().values())
    tokens = bytes_ + [b + "</w>" for b in bytes_] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}, merges


def build_clip_tokenizer() -> CLIPTokenizer:
    vocab, merges = _vocab_and_merges()
    # transformers 5 takes the vocabulary in memory; vocab_file= would be silently ignored.
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, unk_token=EOS, bos_token=BOS, eos_token=EOS, pad_token=EOS,
                              model_max_length=MAX_LENGTH)
    if len(tokenizer) != VOCAB_SIZE:
        raise RuntimeError(f"built a CLIP tokenizer with {len(tokenizer)} tokens, expected {VOCAB_SIZE}")
    return tokenizer
