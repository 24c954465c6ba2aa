"""Shared fixtures: a tiny random-weight pipeline (fast) and scratch copies of the repo for the engines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import eraselab._compat  # noqa: F401  (before any test module imports open_clip or torchvision)

ROOT = Path(__file__).resolve().parents[1]
# The engines call `eraselab`, `dvc` and `snakemake` by name: use the ones beside this interpreter.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
# What a pipeline run needs from the repo: DAG files, params, code (hashed as deps), DVC config.
REPO_FILES = ["Snakefile", "workflow", "src", "pyproject.toml", "profiles", "ablations", ".dvc/config", ".dvcignore",
              ".gitignore"]


MICRO = ROOT / "tests" / "fixtures" / "profiles" / "micro.yaml"  # the whole graph at the smallest size that runs


def scratch_repo(dest: Path, profile: str | Path = "smoke") -> Path:
    """A fresh git + DVC checkout of the pipeline with ``profile``'s params (a name in profiles/ or a path)
    and its graph (`eraselab graph`), as a user would have it."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPO_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    profile_path = Path(profile) if isinstance(profile, Path) else ROOT / "profiles" / f"{profile}.yaml"
    params = subprocess.run(["eraselab", "params", "--profile", str(profile_path)],
                            check=True, capture_output=True, text=True).stdout
    (dest / "params.yaml").write_text(params)
    subprocess.run(["eraselab", "graph"], cwd=dest, check=True, capture_output=True)  # dvc.yaml for these params
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], cwd=dest, check=True)
    return dest


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """SD-layout pipeline with random toy-size weights: enough to test loading and sampling mechanics."""
    import torch
    from diffusers import StableDiffusionPipeline

    from eraselab.models.components import build_text_encoder, build_unet, build_vae, sampling_scheduler
    from eraselab.models.tokenizer import build_clip_tokenizer
    from eraselab.params import parse_params

    torch.manual_seed(0)
    bp = parse_params({"base_model": {"unet": {"block_channels": [16, 32]}, "vae": {"block_channels": [8, 16]}}}).base_model
    pipe = StableDiffusionPipeline(
        vae=build_vae(bp.vae, 16), text_encoder=build_text_encoder(bp.text_encoder), tokenizer=build_clip_tokenizer(),
        unet=build_unet(bp.unet, 8, 4, bp.text_encoder.hidden_size), scheduler=sampling_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out = tmp_path_factory.mktemp("tiny") / "pipeline"
    pipe.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_pipeline_dir):
    from eraselab.models import load_pipeline

    return load_pipeline(tiny_pipeline_dir, device="cpu")


@pytest.fixture(scope="session")
def dvc_micro_run(tmp_path_factory) -> Path:
    """The micro test profile run end to end with `dvc repro`: engine, cache and rerun mechanics, cheaply."""
    repo = scratch_repo(tmp_path_factory.mktemp("micro") / "repo", MICRO)
    result = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo


@pytest.fixture(scope="session")
def dvc_smoke_run(tmp_path_factory) -> Path:
    """The smoke profile run end to end with `dvc repro` (session-scoped: several tests read it)."""
    repo = scratch_repo(tmp_path_factory.mktemp("dvc") / "repo")
    result = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo
