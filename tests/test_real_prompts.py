"""Real-path prompt sets: I2P / UnlearnDiffAtk / COCO readers, filters, errors and the real concept folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from eraselab.concepts import Concept
from eraselab.prompts.real_prompts import (
    I2P_CATEGORIES, PRESETS, InlinePrompts, PromptSetError, PromptSource, RealConceptParams, inline_records,
    preset_params, read_prompt_source, real_concept_prompts, real_concept_spec, write_real_concept)

FIXTURES = Path(__file__).parent / "fixtures"
I2P = str(FIXTURES / "i2p_sample.csv")
NUDITY = str(FIXTURES / "unlearndiffatk_nudity_sample.csv")
COCO = str(FIXTURES / "coco_sample.csv")


def _cases(records):
    return [r["case_number"] for r in records]


def _rewrite(src: str, dest: Path, rename: dict | None = None, drop: tuple = ()) -> Path:
    """A copy of a fixture with columns renamed or dropped."""
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    out = [{(rename or {}).get(k, k): v for k, v in row.items() if k not in drop} for row in rows]
    with open(dest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(out[0]))
        writer.writeheader()
        writer.writerows(out)
    return dest


# --- reading and filtering -----------------------------------------------------------------------------
def test_i2p_rows_keep_their_own_seed_guidance_and_size():
    records = read_prompt_source(PromptSource(format="i2p", path=I2P))
    assert len(records) == 12 and _cases(records) == list(range(10, 22))
    by_case = {r["case_number"]: r for r in records}
    assert (by_case[13]["seed"], by_case[13]["guidance"]) == (1004, 12.0)
    assert (by_case[18]["guidance"], by_case[18]["width"], by_case[18]["height"]) == (7.5, 512, 768)
    assert (by_case[14]["width"], by_case[14]["height"]) == (768, 512)
    assert by_case[21]["seed"] == 4290749014  # I2P's seeds exceed int32
    assert by_case[21]["prompt"] == 'a clown, "laughing", at a birthday party'  # CSV quoting honoured
    assert by_case[12]["meta"]["categories"] == ["hate", "harassment"]
    assert by_case[10]["meta"] == {"categories": ["sexual"], "hard": True, "nudity_percentage": 70.0,
                                   "inappropriate_percentage": 80.0}
    assert all(r["labels"] == {} and r["format"] == "i2p" for r in records)


@pytest.mark.parametrize("filters, expected", [
    ({"categories": ["sexual"]}, [10, 11, 14, 18, 20]),
    ({"categories": ["violence", "shocking"]}, [13, 14, 16, 19]),  # any of
    ({"min_nudity_percentage": 50}, [10, 14, 18, 20]),  # strictly above: the 50.0 row is out (P4D's "> 50")
    ({"hard_only": True}, [10, 13, 14, 17, 20]),
    ({"categories": ["sexual"], "min_nudity_percentage": 50, "hard_only": True}, [10, 14, 20]),
    ({"limit": 3}, [10, 11, 12]),
    ({"categories": ["illegal activity"], "limit": 1}, [17]),
])
def test_i2p_filters_select_exactly_the_expected_rows(filters, expected):
    assert _cases(read_prompt_source(PromptSource(format="i2p", path=I2P, **filters))) == expected


def test_unlearndiffatk_nudity_and_coco_formats():
    nudity = read_prompt_source(PromptSource(format="unlearndiffatk_nudity", path=NUDITY))
    assert _cases(nudity) == [21, 296, 541, 617, 628]
    assert [r["seed"] for r in nudity] == [2001, 2002, 2003, 2004, 2005] and nudity[4]["guidance"] == 8.0
    hard = read_prompt_source(PromptSource(format="unlearndiffatk_nudity", path=NUDITY, hard_only=True))
    assert _cases(hard) == [21, 541, 628]

    coco = read_prompt_source(PromptSource(format="coco", path=COCO))
    assert len(coco) == 10 and coco[0]["seed"] == 41337 and coco[0]["case_number"] == 203564
    assert all(r["guidance"] is None and r["width"] is None for r in coco)
    assert coco[7]["prompt"] == "A clock tower, seen against a cloudy sky."
    assert coco[0]["meta"] == {"source": "coco-30k"}


def test_hub_column_names_are_accepted(tmp_path):
    """The hub's i2p_benchmark.csv says sd_seed / sd_guidance_scale and has no case_number."""
    hub_like = _rewrite(I2P, tmp_path / "i2p_benchmark.csv",
                        rename={"evaluation_seed": "sd_seed", "evaluation_guidance": "sd_guidance_scale"},
                        drop=("case_number",))
    original = read_prompt_source(PromptSource(format="i2p", path=I2P))
    records = read_prompt_source(PromptSource(format="i2p", path=str(hub_like)))
    assert [(r["seed"], r["guidance"]) for r in records] == [(r["seed"], r["guidance"]) for r in original]
    assert _cases(records) == list(range(12))  # the row index stands in


def test_subsampling_is_deterministic_and_skip_gives_disjoint_sets():
    def draw(**kw):
        return _cases(read_prompt_source(PromptSource(format="coco", path=COCO, **kw)))

    first = draw(seed=3, limit=4)
    assert len(first) == 4 and first == draw(seed=3, limit=4)
    assert first != draw(seed=4, limit=4)  # another seed, other rows
    head, tail = draw(seed=0, limit=5), draw(seed=0, skip=5, limit=5)
    assert not set(head) & set(tail) and len(set(head) | set(tail)) == 10
    # filters come first: a subsample of the sexual rows only ever holds sexual rows
    sexual = _cases(read_prompt_source(PromptSource(format="i2p", path=I2P, categories=["sexual"], seed=1, limit=3)))
    assert len(sexual) == 3 and set(sexual) <= {10, 11, 14, 18, 20}


# --- errors name the key or file and the valid choices -------------------------------------------------
def test_missing_column_names_file_and_column(tmp_path):
    broken = _rewrite(I2P, tmp_path / "broken.csv", drop=("nudity_percentage",))
    with pytest.raises(PromptSetError, match=r"broken\.csv.*'nudity_percentage'"):
        read_prompt_source(PromptSource(format="i2p", path=str(broken)))
    with pytest.raises(PromptSetError, match=r"coco_sample\.csv.*'categories'"):  # wrong format for the file
        read_prompt_source(PromptSource(format="i2p", path=COCO))


def test_missing_file_names_the_key_and_what_to_download(tmp_path):
    missing = tmp_path / "nudity.csv"
    with pytest.raises(FileNotFoundError, match=r"real_concept\.attack_seeds\.path.*nudity\.csv.*Diffusion-MU-Attack"):
        read_prompt_source(PromptSource(format="unlearndiffatk_nudity", path=str(missing)), "real_concept.attack_seeds")
    with pytest.raises(PromptSetError, match=r"set retain\.path .*coco_10k\.csv"):  # neither path nor hub
        read_prompt_source(PromptSource(format="coco"), "retain")


def test_unknown_category_lists_valid_ones_and_coco_rejects_i2p_filters():
    with pytest.raises(ValidationError, match="unknown I2P categories.*nudes.*valid choices: hate") as err:
        PromptSource(format="i2p", path=I2P, categories=["sexual", "nudes"])
    assert all(c in str(err.value) for c in I2P_CATEGORIES)
    with pytest.raises(ValidationError, match="min_nudity_percentage.*format 'coco'.*i2p, unlearndiffatk_nudity"):
        PromptSource(format="coco", path=COCO, min_nudity_percentage=50)
    with pytest.raises(ValidationError, match="format"):
        PromptSource(format="laion", path=COCO)


def test_offline_hub_error_names_param_and_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # only the local cache is consulted: no network in this test
    hub = {"repo_id": "eraselab-test/no-such-dataset", "filename": "i2p_benchmark.csv"}
    source = PromptSource(format="i2p", hub=hub)
    with pytest.raises(PromptSetError) as err:
        read_prompt_source(source, "real_concept.target_heldout")
    message = str(err.value)
    for part in ("real_concept.target_heldout.path", "i2p_benchmark.csv", hub["repo_id"], "AIML-TUDA/i2p"):
        assert part in message


def test_hub_file_is_read_when_path_is_empty(monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, **kw):
        calls.append((repo_id, filename, kw["repo_type"]))
        return I2P

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    records = read_prompt_source(PromptSource(format="i2p", hub={"repo_id": "AIML-TUDA/i2p", "filename": "x.csv"},
                                              min_nudity_percentage=50))
    assert calls == [("AIML-TUDA/i2p", "x.csv", "dataset")] and _cases(records) == [10, 14, 18, 20]


def test_prompt_set_must_be_a_file_or_inline():
    with pytest.raises(ValidationError, match="file source .*inline prompts"):
        RealConceptParams.model_validate({**PRESETS["church"], "retain": {"path": COCO}})  # no `format`, no `prompts`
    with pytest.raises(ValidationError, match=r"retain\.inline\.path"):  # a file key merged into an inline preset set
        preset_params("church", {"retain": {"path": COCO}})


# --- the concept folder --------------------------------------------------------------------------------
def _nudity_params(**retain_fit) -> RealConceptParams:
    return preset_params("nudity", {
        "target_heldout": {"path": I2P, "hub": None},
        "attack_seeds": {"path": NUDITY},
        "retain": {"path": COCO, "limit": 5},
        "retain_fit": {"path": COCO, "skip": 5, "limit": 5, **retain_fit},
    })


def _toy_folder(out: Path) -> None:
    """A toy concept folder, built as `eraselab concept-prompts` builds it."""
    from eraselab.params import parse_params
    from eraselab.prompts.world_prompts import CONCEPT_SETS, concept_prompt_set, concept_spec, write_prompts
    from eraselab.world.dataset import WorldSpec

    spec = WorldSpec.from_params(parse_params({}).world)
    out.mkdir()
    for which in CONCEPT_SETS:
        records = concept_prompt_set(spec, "red", which, 4, 0)
        write_prompts(out / f"{which}.jsonl", records)
        if which == "target_train":
            write_prompts(out / "attack_seeds.jsonl", records[:2])
            from eraselab.stages.concept_prompts import toy_variants

            write_prompts(out / "variants.jsonl", toy_variants(records, "red", parse_params({}).prompts))
    (out / "concept.json").write_text(json.dumps(concept_spec(spec, "red", 4, 0).to_json(), indent=2))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_real_concept_folder_has_the_toy_folders_files_and_keys(tmp_path):
    _toy_folder(tmp_path / "toy")
    params = _nudity_params()
    write_real_concept(params, tmp_path / "real")
    toy_files = sorted(p.name for p in (tmp_path / "toy").iterdir())
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == toy_files
    for name in toy_files:
        if name.endswith(".jsonl"):
            toy_keys = set(_lines(tmp_path / "toy" / name)[0])
            real = _lines(tmp_path / "real" / name)
            assert all(toy_keys <= set(r) for r in real), name
            assert {"guidance", "width", "height", "case_number"} <= set(real[0])
    toy_concept = json.loads((tmp_path / "toy" / "concept.json").read_text())
    real_concept = json.loads((tmp_path / "real" / "concept.json").read_text())
    assert set(real_concept) == set(toy_concept)

    concept = Concept.from_json(real_concept)
    assert concept == real_concept_spec(params)
    assert (concept.name, concept.kind) == ("nudity", "nudity")
    assert (concept.erase_prompts, concept.anchor_prompts) == (("nudity",), ("",))
    # the held-out set is P4D's selection (nudity > 50) here drawn from the fixture, seeds and guidance kept
    heldout = _lines(tmp_path / "real" / "target_heldout.jsonl")
    assert _cases(heldout) == [10, 14, 18, 20] and heldout[2]["guidance"] == 7.5
    assert all(r["anchor"] == "" and r["concept"] == "nudity" for r in heldout)
    assert _cases(_lines(tmp_path / "real" / "attack_seeds.jsonl")) == [21, 296, 541, 617, 628]


def test_methods_never_train_on_a_scored_retain_prompt():
    sets = real_concept_prompts(_nudity_params())
    scored = {r["prompt"] for r in sets["retain"]}
    assert len(sets["retain"]) == 5 and not scored & {r["prompt"] for r in sets["retain_fit"]}
    assert real_concept_spec(_nudity_params()).retain_prompts == tuple(r["prompt"] for r in sets["retain_fit"])
    # in file order the fixture's repeated caption (cases 203564 and 520264) falls in both halves: the fit copy goes
    in_order = preset_params("nudity", {"target_heldout": {"path": I2P, "hub": None}, "attack_seeds": {"path": NUDITY},
                                        "retain": {"path": COCO, "seed": None, "limit": 5},
                                        "retain_fit": {"path": COCO, "seed": None, "skip": 5, "limit": 5}})
    ordered = real_concept_prompts(in_order)
    assert _cases(ordered["retain"]) == [203564, 179765, 190236, 331352, 517069]
    assert _cases(ordered["retain_fit"]) == [182417, 254814, 435299, 469192]
    with pytest.raises(PromptSetError, match="retain_fit: every prompt is also in .*retain"):
        real_concept_prompts(_nudity_params(skip=0))


def test_a_failed_write_leaves_the_old_folder_alone(tmp_path):
    out = tmp_path / "concept"
    write_real_concept(_nudity_params(), out)
    before = {p.name: p.read_text() for p in out.iterdir()}
    broken = preset_params("nudity", {"target_heldout": {"path": I2P, "hub": None}, "attack_seeds": {"path": NUDITY},
                                      "retain": {"path": str(tmp_path / "gone.csv")}, "retain_fit": {"path": COCO}})
    with pytest.raises(FileNotFoundError, match=r"real_concept\.retain\.path.*gone\.csv"):
        write_real_concept(broken, out)
    assert {p.name: p.read_text() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["concept"]  # no temp folder left behind


def test_empty_selection_is_an_error_naming_the_key():
    params = _nudity_params().model_copy(update={"target_heldout": PromptSource(
        format="i2p", path=I2P, categories=["hate"], hard_only=True)})
    with pytest.raises(PromptSetError, match=r"real_concept\.target_heldout: no prompt left"):
        real_concept_prompts(params)


# --- presets and inline prompts ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["church", "parachute", "garbage_truck", "tench", "van_gogh", "thomas_kinkade"])
def test_object_and_style_presets_build_offline(name):
    params = preset_params(name)
    sets = real_concept_prompts(params)
    word = params.text.lower()
    assert all(word in r["prompt"].lower() for r in sets["target_train"] + sets["target_heldout"])
    assert not any(word in r["prompt"].lower() for r in sets["retain"] + sets["retain_fit"])
    assert not {r["prompt"] for r in sets["target_train"]} & {r["prompt"] for r in sets["target_heldout"]}
    assert sets["attack_seeds"] == [dict(r, set="attack_seeds") for r in sets["target_train"]]
    seeds = [r["seed"] for r in sets["target_train"]]
    assert len(set(seeds)) == len(seeds)
    assert real_concept_prompts(preset_params(name)) == sets  # deterministic


def test_presets_cover_the_papers_concepts_and_unknown_preset_lists_them():
    assert set(PRESETS) == {"nudity", "violence", "church", "parachute", "garbage_truck", "tench", "van_gogh",
                            "thomas_kinkade"}
    nudity = preset_params("nudity")
    assert nudity.target_heldout.hub.repo_id == "AIML-TUDA/i2p" and nudity.target_heldout.categories == ()
    assert nudity.target_heldout.min_nudity_percentage == 50 and nudity.attack_seeds.format == "unlearndiffatk_nudity"
    violence = preset_params("violence")
    assert violence.target_heldout.categories == ("violence",) and violence.target_heldout.hard_only
    assert violence.attack_seeds.format == "unlearndiffatk_i2p" and violence.kind == "inappropriate"
    with pytest.raises(PromptSetError, match="unknown real concept preset 'nudes'; valid choices: nudity, violence"):
        preset_params("nudes")


def test_inline_prompts_and_anchors():
    records = inline_records(InlinePrompts(prompts=("a church", "a chapel"), seeds_per_prompt=3, seed=5, guidance=6.0),
                             "target_train")
    assert [r["prompt"] for r in records] == ["a church"] * 3 + ["a chapel"] * 3
    assert all(r["guidance"] == 6.0 for r in records) and len({r["seed"] for r in records}) == 6
    assert records != inline_records(InlinePrompts(prompts=("a church", "a chapel"), seeds_per_prompt=3, seed=5,
                                                   guidance=6.0), "target_heldout")  # the set keys the seeds

    per_prompt = preset_params("church", {"erase_prompts": ["a church", "a photo of a church"],
                                          "anchor": ["a building", "a photo of a building"],
                                          "target_train": {"prompts": ["a photo of a church", "a church by a lake"]}})
    assert real_concept_spec(per_prompt).anchor_prompts == ("a building", "a photo of a building")
    train = real_concept_prompts(per_prompt)["target_train"]
    assert {r["prompt"]: r["anchor"] for r in train} == {"a photo of a church": "a photo of a building",
                                                         "a church by a lake": ""}
    with pytest.raises(ValidationError, match="anchor lists 1 prompts but erase_prompts has 2"):
        preset_params("church", {"erase_prompts": ["church", "chapel"], "anchor": ["building"]})


def test_violence_builds_from_i2p_unlearndiffatk_and_coco_files():
    """The violence preset on local copies of its files: I2P's hard violence prompts held out, UnlearnDiffAtk's
    violence seeds with their own seeds and guidance, COCO kept."""
    params = preset_params("violence", {
        "target_heldout": {"path": I2P, "hub": None},
        "attack_seeds": {"path": str(FIXTURES / "unlearndiffatk_violence_sample.csv")},
        "retain": {"path": str(FIXTURES / "coco_sample.csv"), "limit": 4},
        "retain_fit": {"path": str(FIXTURES / "coco_sample.csv"), "skip": 4, "limit": 2}})
    sets = real_concept_prompts(params)
    assert [r["meta"]["categories"] for r in sets["target_heldout"]] == [["violence"]]  # the one hard violence row
    seeds = sets["attack_seeds"]
    assert [r["case_number"] for r in seeds] == [164, 289, 402, 433]  # a limit above the file's rows keeps all
    assert [r["guidance"] for r in seeds] == [7.0, 10.0, 7.0, 15.0] and seeds[0]["seed"] == 2517221644
    assert all("violence" in r["prompt"] or "violent" in r["prompt"] or "fight" in r["prompt"]
               for r in sets["target_train"])
    assert real_concept_spec(params).kind == "inappropriate"
