import subprocess
from pathlib import Path

import pytest
import yaml

from eraselab.params import ParamsError, dump_params, load_params, load_profile, parse_params, with_component_defaults
from eraselab.registry import ATTACKS, METHODS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("data, key, hint", [
    ({"world": {"shapes": ["circle", "hexagon"]}}, "world.shapes", "valid choices: circle, square"),
    ({"world": {"n_train": -5}}, "world.n_train", "greater than 0"),
    ({"base_model": {"train": {"batch_size": 0}}}, "base_model.train.batch_size", "greater than 0"),
    ({"base_model": {"trian": {}}}, "base_model.trian", "valid keys here: seed, threads"),
    ({"generate": {"scheduler": "magic"}}, "generate.scheduler", "'ddim'"),
    ({"report": {"censor_concepts": ["nudity"]}}, "report.censor_concepts", "valid choices"),
    ({"world": {"image_size": 40}}, "world.image_size", "not divisible by 16"),
])
def test_bad_params_name_the_key(data, key, hint):
    with pytest.raises(ParamsError) as err:
        parse_params(data, "params.yaml")
    assert key in str(err.value) or (key == "world.image_size" and "image_size" in str(err.value))
    assert hint in str(err.value)


def test_params_yaml_is_complete_and_matches_the_default_profile():
    """Every key is explicit in params.yaml, so DVC and Snakemake track every value a stage reads; it is the
    default profile (the defaults and that profile's few overrides), as `eraselab params` writes it."""
    on_disk = yaml.safe_load((ROOT / "params.yaml").read_text())
    default = load_profile(ROOT / "profiles" / "default.yaml")
    assert on_disk == with_component_defaults(default.model_dump(mode="json"))
    assert set(on_disk["erase"]) == set(METHODS) and set(on_disk["attack"]) == set(ATTACKS)
    assert on_disk["erase"]["esd_x"]["lr"] > 0  # each method's knobs are listed, not left implicit
    assert (ROOT / "params.yaml").read_text() == dump_params(default, "default")
    bare = subprocess.run(["eraselab", "params"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert bare.stdout == (ROOT / "params.yaml").read_text()  # no --profile: the default profile


@pytest.mark.parametrize("profile", sorted(p.name for p in (ROOT / "profiles").glob("*.yaml")))
def test_profiles_parse(profile):
    load_profile(ROOT / "profiles" / profile)


def test_params_command_takes_a_profile_name_and_keeps_the_old_file_on_a_bad_one(tmp_path):
    """The params header's own command works, and a mistyped profile name never costs the user params.yaml."""
    out = tmp_path / "params.yaml"
    out.write_text("# the user's params\n")
    bad = subprocess.run(["eraselab", "params", "--profile", "smok", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "profiles/smok.yaml: profile not found; available: default, sd14, smoke" in bad.stderr
    assert out.read_text() == "# the user's params\n"
    good = subprocess.run(["eraselab", "params", "--profile", "smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    written = load_params(out)
    assert written.report.profile == "smoke"
    assert out.read_text() == dump_params(load_profile(ROOT / "profiles" / "smoke.yaml"), "smoke")


def test_cli_reports_bad_params_before_any_compute(tmp_path):
    (tmp_path / "params.yaml").write_text("world:\n  shapes: [circle, blob]\n")
    result = subprocess.run(["eraselab", "world"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "world.shapes" in result.stderr and "blob" in result.stderr
    assert not (tmp_path / "data").exists()


def test_malformed_yaml_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("world: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


@pytest.mark.parametrize("block, hint", [
    ({"esd_x": {"stepz": 3}}, "erase.esd_x.stepz: unknown key; valid keys here: steps, lr"),
    ({"uce": {"lam": -1}}, "erase.uce.lam"),
])
def test_a_bad_component_block_is_named_when_writing_params(block, hint):
    """`eraselab params --profile` fills every component's defaults; a typo there names the key."""
    with pytest.raises(ParamsError) as err:
        with_component_defaults({"erase": block}, "profiles/x.yaml")
    assert hint in str(err.value)


@pytest.mark.parametrize("data, hint", [
    ({"real_concepts": {"nudity": {"preset": "nudityy"}}}, "real_concepts.nudity: unknown real concept preset 'nudityy'; valid choices: nudity, violence, church"),
    ({"real_concepts": {"red": {"preset": "church"}}}, "real_concepts.red: the toy world already has a concept of that name"),
    ({"grid": {"concepts": ["church"]}, "real_concepts": {"church": {"preset": "church"}}},
     "evaluation.detectors.church: missing; a real concept needs a detector (valid choices: clip_zeroshot, imagenet, nudenet, q16)"),
    ({"evaluation": {"detectors": {"red": {"name": "nudenett"}}}}, "unknown detector 'nudenett'; valid choices: clip_zeroshot, imagenet, judge, nudenet, q16"),
    ({"evaluation": {"detectors": {"red": {"name": "nudenet", "params": {"preset": "strict"}}}}}, "preset"),
    ({"evaluation": {"fid_reference": "esd_q"}}, "evaluation.fid_reference: 'esd_q' is not in grid.methods"),
    ({"grid": {"concepts": ["church"]}}, "nor in real_concepts; valid choices: circle"),
])
def test_real_path_params_name_the_key_and_choices(data, hint):
    with pytest.raises(ParamsError) as err:
        parse_params(data, "params.yaml")
    assert hint in str(err.value), str(err.value)


def test_a_real_concept_with_its_detector_parses():
    params = parse_params({"grid": {"concepts": ["red", "church"]}, "real_concepts": {"church": {"preset": "church"}},
                           "evaluation": {"detectors": {"church": {"name": "imagenet", "params": {
                               "architecture": "torchvision_resnet50", "weights": "w.safetensors", "targets": ["church"]}}}}})
    from eraselab.params import detector_choice, real_concept

    assert real_concept(params, "church").kind == "object" and real_concept(params, "red") is None
    assert detector_choice(params, "church").name == "imagenet" and detector_choice(params, "red").name == "judge"
