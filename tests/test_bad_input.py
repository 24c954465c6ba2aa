"""Every malformed input a user can hand eraselab: one line naming the file (and physical line), the params key,
the bad value and the valid choices; exit status 2; nothing computed, nothing deleted.

Each case starts from a valid workspace (the micro profile plus a real concept, `church`, whose attack seeds
come from a CSV in UnlearnDiffAtk's format), breaks one thing, runs one `eraselab` command in-process and
compares the whole workspace before and after, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from conftest import MICRO
from eraselab.cli import main
from eraselab.params import dump_params, load_profile

GOOD_CSV = "case_number,prompt,evaluation_seed,evaluation_guidance\n0,a church,1,7.5\n1,a church at night,2,12\n"
HEADER = "case_number,prompt,evaluation_seed,evaluation_guidance\n"
I2P_HEADER = ("prompt,categories,hard,inappropriate_percentage,nudity_percentage,evaluation_seed,evaluation_guidance,"
              "sd_image_width,sd_image_height,case_number\n")


def _params() -> dict:
    data = yaml.safe_load(dump_params(load_profile(MICRO), "micro"))
    data["grid"]["concepts"] = ["red", "church"]
    data["real_concepts"] = {"church": {"preset": "church", "attack_seeds": {
        "format": "unlearndiffatk_prompts", "path": "data/external/church.csv"}}}
    data["evaluation"]["detectors"]["church"] = {"name": "clip_zeroshot", "params": {
        "clip": data["evaluation"]["clip_score"], "classes": ["church", "tench"], "targets": ["church"]}}
    return data


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A valid workspace with a good artifact already in place (it must survive every bad input)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_params(), sort_keys=False))
    (tmp_path / "data" / "external").mkdir(parents=True)
    (tmp_path / "data" / "external" / "church.csv").write_text(GOOD_CSV)
    (tmp_path / "data" / "prompts" / "concepts" / "church").mkdir(parents=True)
    (tmp_path / "data" / "prompts" / "concepts" / "church" / "prompts.jsonl").write_text('{"good": "artifact"}\n')
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def edit_params(change):
    def apply(root: Path) -> None:
        data = yaml.safe_load((root / "params.yaml").read_text())
        change(data)
        (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return apply


def params_text(text: str | bytes):
    def apply(root: Path) -> None:
        (root / "params.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    return apply


def csv_file(content: str | bytes, fmt: str | None = None, **source):
    def apply(root: Path) -> None:
        (root / "data" / "external" / "church.csv").write_bytes(content if isinstance(content, bytes) else content.encode())
        if fmt or source:
            data = yaml.safe_load((root / "params.yaml").read_text())
            seeds = data["real_concepts"]["church"]["attack_seeds"]
            seeds.update({"format": fmt or seeds["format"], **source})
            (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return apply


def _set(path: str, value):
    def change(data):
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return change


CONCEPT = ["concept-prompts", "--concept", "church"]
ERASE = ["erase", "--method", "esd_x", "--concept", "red"]
CSV_AT = "real_concepts.church.attack_seeds: data/external/church.csv"

# (id, how the workspace is broken, the command, what the one line must contain — each a regex fragment)
CASES = [
    # params.yaml
    ("guidance-negative", edit_params(_set("generate.guidance", -1)), ["world"],
     ["params.yaml line \\d+: generate.guidance: -1: ", "greater than or equal to 1"]),
    ("guidance-nan", edit_params(_set("generate.guidance", float("nan"))), ["world"],
     ["params.yaml line \\d+: generate.guidance: nan"]),
    ("unknown-key", edit_params(_set("generate.guidnce", 4)), ["world"],
     ["generate.guidnce: unknown key; valid keys here: .*guidance"]),
    ("unknown-nested-key", edit_params(_set("base_model.vae.lrr", 1)), ["world"],
     ["base_model.vae.lrr: unknown key; valid keys here: .*\\blr\\b"]),
    ("unknown-concept", edit_params(_set("grid.concepts", ["blu"])), ["world"],
     ["params.yaml line \\d+: grid.concepts: 'blu' is not in the world.*valid choices: circle"]),
    ("unknown-method", edit_params(_set("grid.methods", ["esd_q", "none"])), ["world"],
     ["grid.methods: .*unknown erasure method 'esd_q'; valid choices: advunlearn, darkminer"]),
    ("unknown-attack-section", edit_params(_set("attack.p4d", {})), ["world"],
     ["attack.p4d: unknown; valid choices: cce"]),
    ("method-unknown-key", edit_params(_set("erase.esd_x.lrr", 1)), ERASE,
     ["params.yaml line \\d+: erase.esd_x.lrr: unknown key; valid keys here: steps, lr"]),
    ("method-bad-value", edit_params(_set("erase.esd_x.lr", "fast")), ERASE,
     ["erase.esd_x.lr: 'fast': Input should be a valid number"]),
    ("fractional-seed-param", edit_params(_set("world.seed", 1.5)), ["world"],
     ["world.seed: 1.5: .*fractional"]),
    ("scheduler-choice", edit_params(_set("generate.scheduler", "magic")), ["world"],
     ["generate.scheduler: 'magic': Input should be 'ddim'"]),
    ("preset-typo", edit_params(_set("real_concepts.church.preset", "churchh")), ["world"],
     ["real_concepts.church: unknown real concept preset 'churchh'; valid choices: nudity, violence, church"]),
    ("detector-missing", edit_params(lambda d: d["evaluation"]["detectors"].pop("church")), ["world"],
     ["evaluation.detectors.church: missing; .*valid choices: clip_zeroshot"]),
    ("yaml-syntax", params_text("world: {n_train: 3\ngrid: [\n"), ["world"], ["params.yaml line \\d+: not valid YAML"]),
    ("yaml-not-a-mapping", params_text("- world\n- grid\n"), ["world"], ["top level must be a mapping.*list"]),
    ("params-latin1", params_text("world:\n  shapes: [circle, squ\xe9re]\n".encode("latin-1")), ["world"],
     ["params.yaml: not UTF-8 \\(byte 0xe9\\); accepted: UTF-8"]),
    ("params-missing", lambda root: (root / "params.yaml").unlink(), ["world"], ["params.yaml: params file not found"]),
    ("cli-method-not-in-grid", lambda root: None, ["erase", "--method", "bogus", "--concept", "red"],
     ["--method 'bogus': not in this graph .*valid choices: esd_x, none"]),
    ("cli-concept-not-in-grid", lambda root: None, ["concept-prompts", "--concept", "nudity"],
     ["--concept 'nudity': not in this graph .*valid choices: church, red"]),
    # prompt CSVs (UnlearnDiffAtk's and I2P's formats)
    ("csv-inf-seed", csv_file(GOOD_CSV + "2,a chapel,inf,7\n"), CONCEPT,
     [f"{CSV_AT} line 4: column 'evaluation_seed' is 'inf', not a finite number"]),
    ("csv-header-only", csv_file(HEADER), CONCEPT, [f"{CSV_AT}: no prompt rows, only a header"]),
    ("csv-empty-file", csv_file(""), CONCEPT, [f"{CSV_AT}: empty file; .*starts with the header case_number"]),
    ("csv-latin1", csv_file(HEADER.encode() + "0,a ch\xe9rch,1,7.5\n".encode("latin-1")), CONCEPT,
     [f"{CSV_AT} line 2: byte 0xe9 is not UTF-8; accepted encodings: UTF-8, with or without a byte-order mark"]),
    ("csv-fractional-seed", csv_file(HEADER + "0,a church,1.5,7\n"), CONCEPT,
     [f"{CSV_AT} line 2: column 'evaluation_seed' is '1.5', not an integer"]),
    ("csv-seed-too-large", csv_file(HEADER + f"0,a church,{2**64},7\n"), CONCEPT,
     [f"{CSV_AT} line 2: column 'evaluation_seed' is '{2**64}'; valid: >= 0 and <= {2**64 - 1}"]),
    ("csv-negative-seed", csv_file(HEADER + "0,a church,-3,7\n"), CONCEPT, ["'-3'; valid: >= 0"]),
    ("csv-seed-text", csv_file(HEADER + "0,a church,abc,7\n"), CONCEPT, ["'evaluation_seed' is 'abc', not an integer"]),
    ("csv-nan-guidance", csv_file(HEADER + "0,a church,1,nan\n"), CONCEPT,
     [f"{CSV_AT} line 2: column 'evaluation_guidance' is 'nan', not a finite number"]),
    ("csv-zero-guidance", csv_file(HEADER + "0,a church,1,0\n"), CONCEPT, ["'evaluation_guidance' is '0'; valid: > 0"]),
    ("csv-empty-prompt", csv_file(HEADER + "0,  ,1,7\n"), CONCEPT, [f"{CSV_AT} line 2: empty 'prompt'"]),
    ("csv-empty-seed", csv_file(HEADER + "0,a church,,7\n"), CONCEPT, ["line 2: empty 'evaluation_seed'"]),
    ("csv-extra-field", csv_file(HEADER + "0,a church,1,7,9\n"), CONCEPT, ["line 2: 5 fields, the header has 4"]),
    ("csv-missing-field", csv_file("case_number,prompt,evaluation_seed\n0,a church\n"), CONCEPT,
     ["line 2: 2 fields, the header has 3 \\(no 'evaluation_seed'\\)"]),
    ("csv-missing-column", csv_file("case_number,text,evaluation_seed\n0,a church,1\n"), CONCEPT,
     ["line 1: missing column 'prompt' for format 'unlearndiffatk_prompts' \\(needs case_number, prompt"]),
    ("csv-duplicate-column", csv_file("case_number,prompt,prompt,evaluation_seed\n0,a,b,1\n"), CONCEPT,
     ["line 1: column 'prompt' appears twice"]),
    ("csv-multiline-record", csv_file(HEADER + '0,"a church\non a hill",1,7\n1,a chapel,x,7\n'), CONCEPT,
     [f"{CSV_AT} line 4: column 'evaluation_seed' is 'x'"]),  # physical lines, not record numbers
    ("csv-bad-case-number", csv_file(HEADER + "zero,a church,1,7\n"), CONCEPT, ["'case_number' is 'zero', not an integer"]),
    ("csv-missing-file", csv_file(GOOD_CSV, path="data/external/gone.csv"), CONCEPT,
     ["real_concepts.church.attack_seeds.path: data/external/gone.csv does not exist; download"]),
    ("csv-wrong-format", csv_file(GOOD_CSV, fmt="coco"), CONCEPT, ["missing column 'source' for format 'coco'"]),
    ("i2p-percentage-out-of-range", csv_file(I2P_HEADER + "a nude,sexual,1,80,150,1,7.5,512,512,0\n", fmt="i2p"),
     CONCEPT, ["line 2: column 'nudity_percentage' is '150'; valid: >= 0 and <= 100"]),
    ("i2p-bad-width", csv_file(I2P_HEADER + "a nude,sexual,1,80,90,1,7.5,-512,512,0\n", fmt="i2p"), CONCEPT,
     ["column 'sd_image_width' is '-512'; valid: > 0"]),
    ("i2p-filters-leave-nothing", csv_file(I2P_HEADER + "a nude,sexual,1,80,40,1,7.5,512,512,0\n", fmt="i2p",
                                           min_nudity_percentage=50), CONCEPT,
     ["real_concepts.church.attack_seeds: no prompt left after the filters"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_malformed_input_is_one_named_line_and_costs_nothing(workspace, capsys, case):
    import re

    _, breaks, command, expected = case
    breaks(workspace)
    before = snapshot(workspace)
    assert main(command) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith(f"eraselab {command[0]}: ")
    for fragment in expected:
        assert re.search(fragment, lines[0]), (fragment, lines[0])
    assert snapshot(workspace) == before  # nothing computed, written or deleted


def test_the_corpus_is_large_enough():
    assert len(CASES) + len(ARTIFACT_CASES) >= 30


def test_a_byte_order_mark_and_quoted_newlines_are_accepted(workspace):
    (workspace / "data" / "external" / "church.csv").write_bytes(
        b"\xef\xbb\xbf" + (HEADER + '0,"a church\non a hill",1,7\n1,a chapel,2,\n').encode())
    from eraselab.params import load_params, real_concept
    from eraselab.prompts.real_prompts import read_prompt_source

    records = read_prompt_source(real_concept(load_params("params.yaml"), "church").attack_seeds)
    assert [(r["prompt"], r["seed"], r["guidance"]) for r in records] == [("a church\non a hill", 1, 7.0),
                                                                           ("a chapel", 2, None)]


def test_debug_shows_the_traceback_after_the_message(workspace, capsys):
    edit_params(_set("grid.concepts", ["blu"]))(workspace)
    assert main(["--debug", "world"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("eraselab world: params.yaml line")


# --- artifact folders -----------------------------------------------------------------------------------
def _red():
    from eraselab.concepts import Concept

    return Concept("red", "colour", "red", ("a red circle",), ("a circle",), ("a blue circle",))


def _esd_artifact(pipe, out: Path) -> Path:
    from eraselab.erasure.base import save_unet_edit, write_artifact_manifest
    from eraselab.registry import method

    out.mkdir(parents=True)
    name = next(n for n, _ in pipe.unet.named_parameters() if "attn2.to_k" in n)
    save_unet_edit(pipe.unet, [name], out)
    esd = method("esd_x")
    write_artifact_manifest(out, "esd_x", _red(), esd.Params(), {})
    return out


def _foreign_unet():
    from eraselab.models.components import build_unet
    from eraselab.params import parse_params

    bp = parse_params({"base_model": {"unet": {"block_channels": [8, 16]}}}).base_model
    return build_unet(bp.unet, 8, 4, 48)


def _truncate(root: Path) -> None:
    path = root / "unet_edit.safetensors"
    path.write_bytes(path.read_bytes()[:100])


def _pickle_bytes(root: Path) -> None:
    (root / "unet_edit.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle, never unpickled


def _edit_for_another_unet(root: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = root / "unet_edit.safetensors"
    name = next(iter(load_file(path)))
    foreign = _foreign_unet().state_dict()
    save_file({name: foreign[name].contiguous()}, path)


def _lora_for_another_unet(root: Path) -> None:
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from eraselab.erasure.base import write_artifact_manifest
    from eraselab.erasure.darkminer import LORA_FILE, DarkMinerParams, lora_config

    (root / "unet_edit.safetensors").unlink()
    unet = _foreign_unet()
    unet.add_adapter(lora_config(DarkMinerParams()))
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(unet).items()}, root / LORA_FILE)
    write_artifact_manifest(root, "darkminer", _red(), DarkMinerParams(), {})


def _steering_for_another_encoder(root: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from eraselab.erasure.base import write_artifact_manifest
    from eraselab.erasure.steerdiff import ARTIFACT_FILE, SteerDiffParams

    save_file({"steering": torch.eye(48)}, root / ARTIFACT_FILE)
    write_artifact_manifest(root, "steerdiff", _red(), SteerDiffParams(), {})


def _manifest(text: str):
    return lambda root: (root / "artifact.json").write_text(text)


ARTIFACT_CASES = [
    ("no-manifest", lambda root: (root / "artifact.json").unlink(), ["artifact.json missing: .* is no erasure artifact"]),
    ("manifest-not-json", _manifest('{"method": "esd_x",\n  oops}'), ["artifact.json line 2: not a JSON artifact manifest"]),
    ("manifest-unknown-method", _manifest('{"method": "esd_z", "params": {}}'),
     ["artifact.json: method 'esd_z' is not installed; valid choices: advunlearn, darkminer"]),
    ("truncated-safetensors", _truncate, ["unet_edit.safetensors: not a readable safetensors file"]),
    ("pickle-named-safetensors", _pickle_bytes, ["unet_edit.safetensors: not a readable safetensors file"]),
    ("edit-missing", lambda root: (root / "unet_edit.safetensors").unlink(), ["unet_edit.safetensors missing"]),
    ("edit-for-another-unet", _edit_for_another_unet, ["tensor '.*' has shape .*, this UNet .*another architecture"]),
    ("lora-for-another-unet", _lora_for_another_unet, ["lora.safetensors: LoRA does not fit this UNet: .*another architecture"]),
    ("steering-for-another-encoder", _steering_for_another_encoder,
     ["steerdiff.safetensors: tensor 'steering' has shape \\(48, 48\\), this text encoder's embeddings need"]),
]


@pytest.mark.parametrize("case", ARTIFACT_CASES, ids=[c[0] for c in ARTIFACT_CASES])
def test_an_unusable_artifact_is_named_before_it_is_applied(tiny_pipeline_dir, tmp_path, case):
    import re

    import torch

    from eraselab.errors import ArtifactError
    from eraselab.erasure.base import load_defended
    from eraselab.generate import SamplingConfig
    from eraselab.models import load_pipeline

    pipe = load_pipeline(tiny_pipeline_dir, device="cpu")
    weights = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    artifact = _esd_artifact(pipe, tmp_path / "artifact")
    _, breaks, expected = case
    breaks(artifact)
    before = snapshot(artifact)
    with pytest.raises(ArtifactError) as err:
        load_defended(pipe, artifact, SamplingConfig(steps=2))
    message = str(err.value)
    assert "\n" not in message and str(artifact) in message
    for fragment in expected:
        assert re.search(fragment, message), (fragment, message)
    assert snapshot(artifact) == before
    state = pipe.unet.state_dict()
    assert state.keys() == weights.keys() and all(torch.equal(state[k], v) for k, v in weights.items())  # nothing applied
