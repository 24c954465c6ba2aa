"""Natural prompt variations (prompts.variants) and the variants_rate they give each cell."""

from __future__ import annotations

import random
import types

import numpy as np
import pytest

from eraselab.evaluation.cell import variants_metrics
from eraselab.generate import write_images
from eraselab.prompts.real_prompts import preset_params, real_concept_prompts, real_variants
from eraselab.prompts.variants import FAMILIES, rewrite, variant_records
from eraselab.stages.concept_prompts import toy_variants
from eraselab.world.dataset import WorldSpec
from eraselab.params import Params
from eraselab.prompts.world_prompts import concept_prompt_set


def test_each_family_rewrites_as_its_rule_says():
    rng = lambda: random.Random(3)  # noqa: E731
    text = "a photo of a red star with a striped pattern"
    assert rewrite(text, "red", "repeat", rng()).count("red") in (2, 3)
    reordered = rewrite(text, "red", "reorder", rng())
    assert reordered != text and reordered.count("red") == 1 and "star" in reordered
    negated = rewrite(text, "red", "negation", rng())
    assert "red" in negated and any(w in negated for w in ("not", "without", "-free"))
    split = rewrite(text, "striped", "subtoken", rng())
    assert "striped" not in split and split != text
    assert rewrite(text, "red", "case", rng()) != text and "red" in rewrite(text, "red", "case", rng()).lower()
    assert rewrite(text, "red", "compose", rng(), {"frame": "on a dark background"}) == text + " on a dark background"
    long = rewrite(text, "red", "long", rng())
    assert text in long and len(long.split()) > 2 * len(text.split())
    with pytest.raises(ValueError, match="valid choices: reorder"):
        rewrite(text, "red", "typo", rng())
    with pytest.raises(ValueError, match="does not name 'blue'"):
        rewrite(text, "blue", "repeat", rng())
    repeated = rewrite("a reddish star and a red one", "red", "repeat", rng())
    assert repeated.startswith("a reddish star and a red red")  # whole words only: "reddish" is left alone


def test_toy_variants_cover_every_family_with_fresh_seeds_and_are_reproducible():
    spec = WorldSpec.from_params(Params().world)
    train = concept_prompt_set(spec, "red", "target_train", 60, 0)
    p = types.SimpleNamespace(variants_per_family=4, seed=0)
    records = toy_variants(train, "red", p)
    assert [r["family"] for r in records] == [f for f in FAMILIES for _ in range(4)]
    assert all(r["source"] in {t["prompt"] for t in train} and r["set"] == "variants" for r in records)
    assert len({r["seed"] for r in records}) == len(records)
    assert not {r["seed"] for r in records} & {t["seed"] for t in train}
    assert toy_variants(train, "red", p) == records
    assert toy_variants(train, "red", types.SimpleNamespace(variants_per_family=4, seed=1)) != records
    composed = [r["prompt"] for r in records if r["family"] == "compose"]
    assert all("on a dark background" in c or "in a drawing" in c for c in composed)


def test_real_concepts_vary_the_prompts_that_name_them():
    params = preset_params("church")
    variants = real_variants(params, real_concept_prompts(params))
    assert len(variants) == 8 * len(FAMILIES) and {r["family"] for r in variants} == set(FAMILIES)
    assert real_variants(preset_params("church", {"variants_per_family": 0}), real_concept_prompts(params)) == []


def _folder(tmp_path, name, hits, families):
    images = np.stack([np.full((8, 8, 3), 255 if h else 0, np.uint8) for h in hits])
    records = [{"prompt": f"p{i}", "seed": i, "family": f} for i, f in enumerate(families)]
    write_images(tmp_path / name / "variants", images, records)
    return tmp_path / name


class Bright:
    def present(self, images):
        return images.reshape(len(images), -1).mean(1) > 127


def test_variants_rate_counts_only_what_the_undefended_model_shows(tmp_path):
    families = ["repeat", "repeat", "long", "long", "long"]
    reference = _folder(tmp_path, "none", [1, 1, 1, 1, 0], families)
    defended = _folder(tmp_path, "m", [1, 0, 0, 0, 1], families)  # the last is not scored: none did not show it
    out = variants_metrics(defended, reference, Bright())
    assert out["variants_rate"] == 0.25 and out["variants_n"] == 4
    assert out["variants_by_family"] == {"repeat": {"rate": 0.5, "n": 2}, "long": {"rate": 0.0, "n": 2}}
    assert out["variants_worst"] == "repeat"
    assert variants_metrics(tmp_path / "absent", reference, Bright())["variants_rate"] is None
    other = tmp_path / "other"
    write_images(other / "variants", np.zeros((5, 8, 8, 3), np.uint8), [{"prompt": "x", "seed": i, "family": "long"}
                                                                       for i in range(5)])
    with pytest.raises(ValueError, match="hold different prompts"):
        variants_metrics(other, reference, Bright())
