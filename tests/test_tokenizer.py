import open_clip
import pytest

from eraselab.models.tokenizer import build_clip_tokenizer

SAMPLES = ["a photo of a cat", "a five-pointed star, polka-dot!", "Unicode naïve café 123",
           "a striped crimson plus sign on a dark background", "nude woman on a beach, 8k, trending on artstation",
           "   spaces   and CAPS  ", ""]


@pytest.fixture(scope="module")
def tokenizers():
    return build_clip_tokenizer(), open_clip.get_tokenizer("ViT-B-32")


@pytest.mark.parametrize("text", SAMPLES)
def test_ids_equal_open_clip(tokenizers, text):
    ours, reference = tokenizers
    ids = ours(text).input_ids
    ref = [i for i in reference([text])[0].tolist() if i != 0]  # open_clip pads with 0, SD with <|endoftext|>
    assert ids == ref


def test_sd_conventions(tokenizers):
    ours, _ = tokenizers
    assert len(ours) == 49408 and ours.model_max_length == 77
    ids = ours("a cat", padding="max_length", max_length=77).input_ids
    assert ids[0] == 49406 and ids[-1] == 49407 and len(ids) == 77
