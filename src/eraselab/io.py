"""Atomic artifact writing: a stage's output appears whole or not at all."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(target: str | Path):
    """Yield a temp dir beside ``target``; on success it replaces ``target``, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A killed run (SIGKILL skips cleanup) leaves its temp dir behind; the engines never run two jobs on
    # one output at once, so any earlier temp of this target is stale.
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_config(folder: str | Path, command: str) -> dict:
    """A saved model's config.json; a missing one names the command that builds it."""
    from eraselab.errors import ArtifactError

    path = Path(folder) / "config.json"
    if not path.exists():
        raise ArtifactError(f"{path} missing: run `eraselab {command}` first")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: not a JSON model config ({err}); rebuild it with `eraselab {command}`") from None


STAGES_DIR = Path("logs/stages")
TIMING_DIR = Path("logs") / "timing"


def record_timing(output: str | Path, seconds: dict[str, float]) -> None:
    """Wall-clock timings go beside the artifacts, never into them: artifacts stay bit-identical across
    runs (and across engines), while logs/timing/<output>.json (untracked) feeds benchmarks."""
    write_json(TIMING_DIR / f"{Path(output).as_posix().strip('/')}.json", {k: round(v, 2) for k, v in seconds.items()})


def record_stage(command: str, output: str | Path | None, wall_s: float) -> None:
    """Every stage's wall time and peak memory (this process's max RSS) -> logs/stages/<output>.json, for
    benchmarks/stages.py's per-stage breakdown. Untracked, like logs/timing: artifacts stay bit-identical."""
    import resource
    import sys

    if output and Path(output).is_absolute():
        try:
            output = Path(output).relative_to(Path.cwd())
        except ValueError:  # a stage run by hand into some other folder is not part of this pipeline's breakdown
            return
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    peak_mb = rss_kb / (1024 * 1024 if sys.platform == "darwin" else 1024)
    name = Path(output).as_posix().strip("/") if output else command
    write_json(STAGES_DIR / f"{name}.json", {"stage": command, "wall_s": round(wall_s, 2), "peak_rss_mb": round(peak_mb, 1)})


@lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a rewritten file is hashed anew
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a weights file, streamed, cached per (real path, size, mtime): metric specs declare it."""
    real = os.path.realpath(path)  # hub cache snapshots are symlinks to blobs
    stat = os.stat(real)
    return _sha256(real, stat.st_size, stat.st_mtime_ns)
