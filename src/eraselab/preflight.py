"""Before any compute: is every external weight and data file the params name actually here?

The toy world needs nothing from outside. The real path (sd14) needs Stable Diffusion, the detectors'
weights, CLIP and the prompt files. Every stage runs this check first, so `dvc repro` on a machine
without them stops at its first stage with one message listing everything to download, instead of
failing hours in, at the first stage that happens to need a missing file.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from pathlib import Path

from eraselab.errors import UserError


class MissingExternalsError(UserError, RuntimeError):
    """Weights or data files the params need are not on this machine; the message lists each."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


@functools.lru_cache(maxsize=None)
def _hub_reachable(repo_id: str, repo_type: str = "model") -> bool:
    if _offline():
        return False
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info if repo_type == "model" else HfApi().dataset_info
        info(repo_id, timeout=5)
        return True
    except Exception:  # no network, DNS failure, gated repo: all mean "cannot download from here"
        return False


def _hub_model_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    needed = ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
              "text_encoder/model.safetensors")
    return all(isinstance(try_to_load_from_cache(repo_id, f), str) for f in needed)


def _model(params) -> list[str]:
    m = params.model
    if m.source != "hub":
        return []
    local = Path(m.hub_id).expanduser()
    if local.is_dir():
        return [] if (local / "model_index.json").is_file() else [
            f"model.hub_id: {local} has no model_index.json (not a diffusers pipeline folder)"]
    if _hub_model_cached(m.hub_id) or _hub_reachable(m.hub_id):
        return []
    return [f"model.hub_id {m.hub_id!r}: not in the Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) "
            f"and the hub is unreachable. On a machine with network: `hf download {m.hub_id} --include '*.json' "
            f"'*.txt' '*.safetensors'` and copy the cache here (or set model.hub_id to a local diffusers folder)"]


def _detectors(params) -> list[str]:
    from eraselab.evaluation.clip_score import ClipScoreSpec
    from eraselab.evaluation.detectors import validate_detector_params
    from eraselab.params import detector_choice

    out = []
    for concept in params.grid.concepts:
        choice = detector_choice(params, concept)
        key = f"evaluation.detectors.{concept}.params"
        lines = []
        if choice.name == "imagenet":
            weights = Path(str(choice.params.get("weights", "")))
            if not weights.is_file():
                lines.append(f"{key}.weights: {weights} missing: an ImageNet ResNet-50 in safetensors (e.g. "
                             f"timm/resnet50.tv_in1k's model.safetensors, or microsoft/resnet-50 with architecture "
                             f"hf_resnet50)")
        checked = validate_detector_params(choice.name, choice.params)
        if hasattr(checked, "missing"):  # a detector that declares its own files (q16, plugins) lists them itself
            lines += checked.missing(key)
        clip, scored = getattr(checked, "clip", None), params.evaluation.clip_score
        if isinstance(clip, ClipScoreSpec) and (clip.model, clip.pretrained, clip.cache_dir) != (
                scored.model, scored.pretrained, scored.cache_dir):
            lines += _clip(clip, f"{key}.clip")  # the CLIP score's own is listed once, by _metrics
        for line in lines:
            out.append(_one_line_per_file(out, line))
    return out


@contextmanager
def _offline_unless(reachable: bool):
    """Without a reachable hub, look only in the local cache (no minute of download retries per file)."""
    before = os.environ.get("HF_HUB_OFFLINE")
    if not reachable:
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


def _one_line_per_file(out: list[str], line: str) -> str:
    """A file several inputs share (COCO for retain and retain_fit, one ResNet for two objects) is listed once,
    naming every key."""
    key, _, problem = line.partition(": ")
    for i, earlier in enumerate(out):
        keys, _, same = earlier.partition(": ")
        if same == problem and problem:
            out.pop(i)
            concept = key.rsplit(".", 2)[0] + "."  # real_concepts.<concept>.: a set of the same concept is named short
            same = keys.rsplit(", ", 1)[-1].startswith(concept)  # the key before it is of the same concept
            short = key.rsplit(".", 2)[-2] if key.endswith(".path") and same else key
            return f"{keys}, {short}: {problem}"
    return line


def _prompt_files(params) -> list[str]:
    """Each real concept's prompt files, read and checked row by row (each set on its own, so every bad file
    is listed); then the concept's sets as the pipeline draws them (filters, retain_fit apart from retain)."""
    from eraselab.params import real_concept
    from eraselab.prompts.real_prompts import REAL_SETS, PromptSetError, read_prompt_set, real_concept_prompts

    out = []
    for concept in params.grid.concepts:
        real = real_concept(params, concept)
        if real is None:
            continue
        before = len(out)
        for which in REAL_SETS:
            prompt_set = getattr(real, which)
            if prompt_set is None:
                continue
            hub = getattr(prompt_set, "hub", None)
            try:
                with _offline_unless(hub is None or getattr(prompt_set, "path", "") or _hub_reachable(hub.repo_id, "dataset")):
                    read_prompt_set(prompt_set, f"real_concepts.{concept}.{which}")
            except (OSError, ValueError) as err:  # the loaders' errors say what to download, or what is wrong where
                out.append(_one_line_per_file(out, str(err)))
        if len(out) == before:
            try:
                with _offline_unless(False):  # every file is local or cached by now
                    real_concept_prompts(real, f"real_concepts.{concept}")
            except PromptSetError as err:
                out.append(str(err))
    return out


def _clip(spec, key: str) -> list[str]:
    if spec.pretrained_kind == "file" and not Path(spec.pretrained).is_file():
        return [f"{key}.pretrained: {spec.pretrained} missing (open_clip {spec.model} weights in safetensors)"]
    if spec.pretrained_kind == "tag":  # imported here: the toy world's stages never load torch for this check
        from eraselab.evaluation.clip_score import cached_tag_weights
        from eraselab.models.loading import ModelUnavailableError

        try:
            cached_tag_weights(spec.model, spec.pretrained, spec.cache_dir)
        except (ModelUnavailableError, ValueError) as err:
            return [f"{key}: {err}"]
    return []  # toy: models/clip is built by the pipeline itself


def _metrics(params) -> list[str]:
    e = params.evaluation
    out = _clip(e.clip_score, "evaluation.clip_score")
    if e.fid.feature_extractor == "clip_image" and e.fid.clip != e.clip_score:
        out += _clip(e.fid.clip, "evaluation.fid.clip")
    if e.fid.feature_extractor == "inception" and not e.fid.inception_path().is_file():
        out.append(f"evaluation.fid: clean-fid's Inception weights {e.fid.inception_path()} missing: download "
                   f"inception-2015-12-05.pt (clean-fid's own file) there, or set evaluation.fid.inception_dir")
    return out


CHECKS = (_model, _detectors, _metrics, _prompt_files)


def missing_externals(params) -> list[str]:
    """One line per missing or malformed weight or data file (empty: everything is here), each once.
    Loads no model."""
    return list(dict.fromkeys(line for check in CHECKS for line in check(params)))


def check_externals(params, source: str = "params.yaml") -> None:
    problems = missing_externals(params)
    if len(problems) == 1:
        raise MissingExternalsError(f"{problems[0]} (nothing was computed)")
    if problems:
        raise MissingExternalsError(f"{source}: {len(problems)} external inputs missing or malformed; nothing was "
                                    f"computed.\n" + "\n".join(f"  - {line}" for line in problems))
