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


FAULT_ENV = "ERASELAB_FAULT_KILL_AT"


def _fault_point(name: str) -> None:
    """Fault tests only: ``ERASELAB_FAULT_KILL_AT=<name>`` kills this process (SIGKILL, no cleanup) at the named
    point of an atomic write, to prove a kill there loses nothing (tests/test_faults.py)."""
    if os.environ.get(FAULT_ENV) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


# Where writes in progress live: one scratch folder per workspace (git-ignored), not beside the outputs, so a
# killed run litters nothing a user or git sees. An entry is named after its target (its path, quoted), the
# machine and the process that made it; any later eraselab process on that machine sweeps the entries of
# processes that are gone: a finished-but-unplaced folder is deleted, an old output set aside goes back in
# place if nothing replaced it. A target on another filesystem than the workspace keeps its temps beside it.
SCRATCH = Path(".eraselab") / "tmp"
_TAG = "~"


def _owner() -> str:
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


def _scratch_for(target: Path) -> tuple[Path, str]:
    """(folder, name stem) for ``target``'s temp and set-aside entries."""
    from urllib.parse import quote

    scratch = Path.cwd() / SCRATCH
    scratch.mkdir(parents=True, exist_ok=True)
    absolute = target.absolute()
    if os.stat(scratch).st_dev != os.stat(absolute.parent).st_dev:  # renames must stay on one filesystem
        return absolute.parent, "." + quote(target.name, safe="").replace(_TAG, "%7E")
    name = quote(os.path.relpath(absolute, Path.cwd()), safe="").replace(_TAG, "%7E")
    if len(name) > 180:  # file names stop at 255 bytes: a long path is named by its hash (never put back)
        name = f"={quote(target.name[:60], safe='').replace(_TAG, '%7E')}-{hashlib.sha256(str(absolute).encode()).hexdigest()[:16]}"
    return scratch, name


def _target_of(folder: Path, stem: str) -> Path | None:
    from urllib.parse import unquote

    if folder.absolute() != (Path.cwd() / SCRATCH).absolute():
        return folder / unquote(stem[1:])  # beside its target
    return None if stem.startswith("=") else Path.cwd() / unquote(stem)  # "=": named by its hash


def _alive(owner: str) -> bool:
    import socket

    host, _, pid = owner.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process (a shared filesystem): not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: Path | None = None) -> list[str]:
    """Clear what killed processes left in the scratch folder; returns what it did, one line per entry."""
    folder = folder or Path.cwd() / SCRATCH
    if not folder.is_dir():
        return []
    done = []
    for entry in sorted(folder.iterdir()):
        parts = entry.name.split(_TAG)
        if len(parts) < 3 or parts[1] not in ("tmp", "old") or _alive(parts[2]):
            continue
        target = _target_of(folder, parts[0])
        if parts[1] == "old" and (target is None or not target.parent.is_dir()):
            continue  # an old output with nowhere known to go: kept
        if parts[1] == "old" and not target.exists():
            entry.rename(target)
            done.append(f"put back {target}")
        else:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            done.append(f"removed {entry.name}")
    return done


@contextlib.contextmanager
def atomic_dir(target: str | Path):
    """Yield a fresh temp folder; on success it replaces ``target`` (two renames), on error it is removed.

    A kill at any point leaves ``target`` whole (old or new) or, between the two renames, set aside in the
    scratch folder, from where the next eraselab process puts it back."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder, stem = _scratch_for(target)
    sweep(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f"{stem}{_TAG}tmp{_TAG}{_owner()}{_TAG}", dir=folder))
    try:
        yield tmp
        _fault_point("dir-written")
        if target.exists():
            old = folder / f"{stem}{_TAG}old{_TAG}{_owner()}"
            target.rename(old)
            _fault_point("dir-old-aside")
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
    folder, stem = _scratch_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{stem}{_TAG}tmp{_TAG}{_owner()}{_TAG}", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _fault_point("file-written")
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
