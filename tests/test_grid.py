"""The grid's building blocks: registries, the `none` method, `no_attack`, concept prompt sets."""

import json

import numpy as np
import pytest

from eraselab import registry
from eraselab.erasure.base import Defended, load_defended, write_artifact_manifest
from eraselab.generate import SamplingConfig, generate_prompts
from eraselab.params import ParamsError, check_components, parse_params
from eraselab.prompts.world_prompts import concept_prompt_set, concept_spec
from eraselab.world import SYNONYMS
from eraselab.world.dataset import WorldSpec
from eraselab.world.vocabulary import FRAMES, HELDOUT

SPEC = WorldSpec.from_params(parse_params({}).world)


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_every_method_is_importable_with_params(name):
    from pydantic import BaseModel

    cls = registry.method(name)
    assert cls.name == name and issubclass(cls.Params, BaseModel)


@pytest.mark.parametrize("name", sorted(registry.ATTACKS))
def test_every_attack_is_importable_with_params(name):
    assert registry.attack(name).name == name


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(KeyError, match="valid choices: advunlearn, darkminer, esd_u, esd_x"):
        registry.method("esd")
    with pytest.raises(ParamsError, match="grid.attacks: unknown attack 'p4d'"):
        parse_params({"grid": {"attacks": ["p4d"]}})


def test_component_params_are_checked_before_compute():
    params = parse_params({"erase": {"none": {"lr": 0.1}}})
    with pytest.raises(ParamsError, match="erase.none.lr"):
        check_components(params)


def test_none_method_leaves_the_model_untouched(tiny_pipeline, tmp_path):
    import torch

    concept = concept_spec(SPEC, "red", 4, 0)
    before = {k: v.clone() for k, v in tiny_pipeline.unet.state_dict().items()}
    method = registry.method("none")()
    params = method.Params()
    log = method.erase(tiny_pipeline, concept, params, tmp_path)
    write_artifact_manifest(tmp_path, "none", concept, params, log)
    config = SamplingConfig(steps=3)
    defended = load_defended(tiny_pipeline, tmp_path, config)
    assert isinstance(defended, Defended) and defended.method == "none"
    assert all(torch.equal(before[k], v) for k, v in tiny_pipeline.unet.state_dict().items())
    prompts, seeds = list(concept.erase_prompts[:2]), [1, 2]
    assert np.array_equal(defended.generate_prompts(prompts, seeds),
                          generate_prompts(tiny_pipeline, prompts, seeds, config, progress=False))
    assert json.loads((tmp_path / "artifact.json").read_text())["concept"] == "red"


def test_no_attack_returns_the_seed_prompts():
    seeds = [{"prompt": "a red star", "seed": 3}, {"prompt": "a red disc", "seed": 4}]
    out = registry.attack("no_attack")().run(None, None, None, seeds, registry.attack("no_attack").Params())
    assert [(a.prompt, a.seed, a.token_ids) for a in out] == [("a red star", 3, None), ("a red disc", 4, None)]


@pytest.mark.parametrize("concept, kind", [("red", "colour"), ("star", "shape"), ("striped", "texture")])
def test_concept_prompt_sets(concept, kind):
    train = concept_prompt_set(SPEC, concept, "target_train", 40, 0)
    heldout = concept_prompt_set(SPEC, concept, "target_heldout", 40, 0)
    retain = concept_prompt_set(SPEC, concept, "retain", 40, 0)
    primary, others = SYNONYMS[kind][concept][0], SYNONYMS[kind][concept][1:]
    assert all(r["labels"][kind] == concept and primary in r["prompt"] for r in train)
    assert all(r["labels"][kind] == concept and any(o in r["prompt"] for o in others) for r in heldout)
    assert all(r["labels"][kind] != concept for r in retain)
    heldout_frames = [FRAMES[f].split("{np}") for f, _ in HELDOUT]
    assert all(any(r["prompt"].startswith(a.rstrip()) or r["prompt"].endswith(b) for a, b in heldout_frames)
               for r in heldout)
    for r in train:  # the anchor is the prompt with the concept taken out
        assert primary not in r["anchor"].replace("star shape", "shape") or kind == "shape"
        assert r["anchor"] != r["prompt"]
    assert concept_prompt_set(SPEC, concept, "target_train", 40, 0) == train  # deterministic
    assert len({r["seed"] for r in train}) == 40
