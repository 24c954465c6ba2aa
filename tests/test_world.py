import numpy as np
import pytest

from eraselab.params import parse_params
from eraselab.world import SYNONYMS, Labels, caption, sample_caption
from eraselab.world.dataset import WorldSpec, render_split
from eraselab.world.vocabulary import HELDOUT, TRAIN_PHRASINGS, all_training_captions


def spec(**overrides):
    return WorldSpec.from_params(parse_params({"world": overrides}).world)


def test_rendering_is_deterministic_per_seed():
    a_images, a_labels = render_split(spec(), "train", 40)
    b_images, b_labels = render_split(spec(), "train", 40)
    assert np.array_equal(a_images, b_images) and np.array_equal(a_labels, b_labels)
    c_images, _ = render_split(spec(seed=1), "train", 40)
    assert not np.array_equal(a_images, c_images)


def test_splits_never_share_images_and_are_balanced():
    train, labels = render_split(spec(), "train", 150)
    test, _ = render_split(spec(), "judge_test", 150)
    assert not any(np.array_equal(train[0], t) for t in test)
    for kind in range(3):
        counts = np.bincount(labels[:, kind])
        assert counts.max() - counts.min() <= 1  # 150 = 2 x 75 combinations: exactly balanced


def test_concepts_are_visible_in_pixels():
    """Colour shows in the mean object colour; a striped object has more white than a plain one."""
    s = spec(colour_jitter=0.0)
    images, labels = render_split(s, "train", 75)
    red = images[labels[:, 1] == s.colours.index("red")]
    assert (red[..., 0].astype(int) - red[..., 2]).mean() > 20
    white = lambda im: (im.min(-1) > 200).mean()  # noqa: E731
    plain = [white(im) for im, lab in zip(images, labels) if s.textures[lab[2]] == "plain"]
    striped = [white(im) for im, lab in zip(images, labels) if s.textures[lab[2]] == "striped"]
    assert min(striped) > max(plain)


def test_heldout_phrasings_are_new_combinations_of_known_words():
    assert HELDOUT and not set(HELDOUT) & set(TRAIN_PHRASINGS)
    train_words = {w for p in TRAIN_PHRASINGS for w in caption(p, "star", "red", "striped").replace(",", "").split()}
    for p in HELDOUT:
        text = caption(p, "star", "red", "striped")
        assert text not in {caption(t, "star", "red", "striped") for t in TRAIN_PHRASINGS}
        assert set(text.replace(",", "").split()) <= train_words


def test_captions_use_synonyms_and_articles():
    assert caption((0, "adjective"), "star", "emerald", None) == "an emerald star"
    labels = Labels("star", "red", "dotted")
    import random

    rng = random.Random(0)
    texts = {sample_caption(labels, rng, 0.2, 0.3) for _ in range(300)}
    assert any("five-pointed star" in t for t in texts) and any("crimson" in t for t in texts)
    assert texts <= set(all_training_captions(labels))
    assert all(any(s in t for s in SYNONYMS["shape"]["star"]) for t in texts)
