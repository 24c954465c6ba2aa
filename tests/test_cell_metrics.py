"""Pre-ASR / ASR of one cell, with the attack seeds inside target_train (toy) or a separate set (real path)."""

from __future__ import annotations

import numpy as np
import pytest

from eraselab.concepts import Concept
from eraselab.evaluation.cell import evaluate_cell
from eraselab.generate import write_images


class BrightDetector:
    """The concept is shown where the image is bright: lets the test decide each image's verdict."""

    def present(self, images):
        return images.reshape(len(images), -1).mean(axis=1) > 127

    def spec(self):
        return {"name": "bright"}


class ConstantScorer:
    def score(self, images, prompts):
        return np.full(len(images), 30.0)

    def declaration(self):
        return {"model": "constant"}


def images(*bright: bool) -> np.ndarray:
    return np.stack([np.full((4, 4, 3), 255 if b else 0, np.uint8) for b in bright])


def records(prompts, **extra):
    return [{"prompt": p, "seed": i, **extra} for i, p in enumerate(prompts)]


def write_cell(tmp_path, seeds_separate: bool):
    samples = tmp_path / "samples"
    write_images(samples / "target_train", images(True, False, False), records(["a", "b", "c"]))
    write_images(samples / "target_heldout", images(False), records(["h"]))
    write_images(samples / "retain", images(False), records(["r"]))
    seed_prompts = ["s0", "s1", "s2"] if seeds_separate else ["a", "b", "c"]
    if seeds_separate:  # unattacked: s0 shows the concept, s1 and s2 do not
        write_images(samples / "attack_seeds", images(True, False, False), records(seed_prompts))
    attack = tmp_path / "attack"
    # attacked: the s1 attack succeeds, s2 fails
    attacked = [{"prompt": f"adv {p}", "seed_prompt": p, "seed": i, "log": {"queries": 5}}
                for i, p in enumerate(seed_prompts)]
    write_images(attack / "images", images(False, True, False), attacked)
    return samples, attack


@pytest.mark.parametrize("seeds_separate", [False, True])
def test_pre_asr_reads_the_seeds_unattacked_images(tmp_path, seeds_separate):
    samples, attack = write_cell(tmp_path, seeds_separate)
    m = evaluate_cell(Concept("x", "colour", "x", ("x",), ("",), ()), samples, attack, BrightDetector(), None, ConstantScorer())
    assert m["pre_asr"] == pytest.approx(1 / 3) and m["asr"] == pytest.approx(2 / 3)
    assert m["target_rate"] == pytest.approx(1 / 3) and m["n"]["attack_seeds"] == 3


def test_attack_seeds_without_unattacked_images_are_named(tmp_path):
    samples, attack = write_cell(tmp_path, seeds_separate=True)
    import shutil

    shutil.rmtree(samples / "attack_seeds")
    with pytest.raises(ValueError, match="no unattacked image"):
        evaluate_cell(Concept("x", "colour", "x", ("x",), ("",), ()), samples, attack, BrightDetector(), None, ConstantScorer())
