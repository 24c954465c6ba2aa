import json

import numpy as np
import pytest

from eraselab.generate import SamplingConfig, encode_prompts, generate_prompts, read_images, sample, write_images

CONFIG = SamplingConfig(steps=4, guidance=4.0, batch_size=8)
PROMPTS = ["a red star", "a photo of a striped blue circle", "a yellow cross", "a dotted green square"]
SEEDS = [11, 22, 33, 44]


def test_same_seed_gives_bit_identical_images(tiny_pipeline):
    a = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False)
    b = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False)
    assert a.dtype == np.uint8 and a.shape == (4, 16, 16, 3)
    assert np.array_equal(a, b)
    c = generate_prompts(tiny_pipeline, PROMPTS, [1, 2, 3, 4], CONFIG, progress=False)
    assert not np.array_equal(a, c)


def test_text_and_embedding_inputs_give_identical_images(tiny_pipeline):
    from_text = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False)
    embeds = encode_prompts(tiny_pipeline, PROMPTS)
    assert embeds.shape[:2] == (4, 77)
    from_embeds = sample(tiny_pipeline, embeds, SEEDS, CONFIG, progress=False)
    assert np.array_equal(from_text, from_embeds)


def test_image_does_not_depend_on_its_batch(tiny_pipeline):
    """Per-prompt seeds: an image alone equals itself inside a batch (up to float reassociation)."""
    batch = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False)
    alone = generate_prompts(tiny_pipeline, PROMPTS[2:3], SEEDS[2:3], CONFIG, progress=False)
    assert np.abs(batch[2].astype(int) - alone[0]).max() <= 1


def test_guidance_and_negative_prompt_change_the_result(tiny_pipeline):
    base = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False)
    other = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, SamplingConfig(steps=4, guidance=1.0), progress=False)
    neg = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, negative_prompts=["a star"] * 4, progress=False)
    assert not np.array_equal(base, other) and not np.array_equal(base, neg)


def test_every_scheduler_samples(tiny_pipeline):
    from eraselab.generate import SCHEDULERS

    for name in SCHEDULERS:
        images = generate_prompts(tiny_pipeline, PROMPTS[:1], SEEDS[:1], SamplingConfig(steps=3, scheduler=name),
                                  progress=False)
        assert images.shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="valid: ddim"):
        SamplingConfig(scheduler="magic")


def test_images_and_manifest_round_trip(tiny_pipeline, tmp_path):
    images = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False)
    records = [{"prompt": p, "seed": s, "guidance": 4.0, "steps": 4, "model": "tiny"} for p, s in zip(PROMPTS, SEEDS)]
    write_images(tmp_path / "out", images, records)
    back, manifest = read_images(tmp_path / "out")
    assert np.array_equal(back, images)
    assert [m["prompt"] for m in manifest] == PROMPTS and manifest[0]["file"] == "images/00000.png"
    assert json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[1])["seed"] == 22


def test_per_prompt_guidance_equals_a_run_at_that_scale(tiny_pipeline):
    """I2P prompts carry their own guidance: each image is the one a run at its scale gives."""
    scales = [1.0, 4.0, 7.5, 2.0]
    mixed = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False, scales=scales)
    for i, s in enumerate(scales):
        alone = generate_prompts(tiny_pipeline, PROMPTS, SEEDS, SamplingConfig(steps=4, guidance=s, batch_size=8),
                                 progress=False)
        assert np.abs(mixed[i].astype(int) - alone[i]).max() <= 1, s
    assert not np.array_equal(mixed[0], mixed[2])
    with pytest.raises(ValueError, match="3 guidance scales but 4 seeds"):
        generate_prompts(tiny_pipeline, PROMPTS, SEEDS, CONFIG, progress=False, scales=scales[:3])


def test_record_scales_only_where_records_carry_guidance():
    from eraselab.generate import record_scales

    assert record_scales([{"prompt": "a"}, {"prompt": "b", "guidance": None}], CONFIG) is None  # toy: float path
    assert record_scales([{"guidance": 7.5}, {"guidance": None}], CONFIG) == [7.5, CONFIG.guidance]
