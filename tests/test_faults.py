"""Kills lose nothing: a stage killed (SIGKILL, DVC and the stage together) at random moments, and at each
point of its final write, leaves its output whole or absent, never partial; a rerun then completes, `dvc
status` is clean and the output is bit-identical to an unkilled run's.

The stage is `world` (it writes hundreds of images and a manifest into one folder) with enough images that a
run lasts a few seconds; the named write points are injected with ``ERASELAB_FAULT_KILL_AT`` (eraselab.io).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import MICRO, scratch_repo
from eraselab.io import FAULT_ENV, SCRATCH

pytestmark = pytest.mark.slow

RANDOM_KILLS = 8
WRITE_POINTS = ("dir-written", "file-written")  # the folder complete beside its target; a file before its rename


def _repo(dest: Path) -> Path:
    repo = scratch_repo(dest, MICRO)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["world"]["n_train"] = 3000  # a few seconds of rendering and writing: room to land kills inside
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["eraselab", "graph"], cwd=repo, check=True, capture_output=True)
    return repo


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(repo: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(list(args), cwd=repo, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def _whole_or_absent(repo: Path, expected: dict[str, str]) -> bool:
    world = repo / "data" / "world"
    return not world.exists() or _hashes(world) == expected


def test_kills_anywhere_lose_nothing_and_a_rerun_is_bit_identical(tmp_path):
    ref = _repo(tmp_path / "ref")
    start = time.perf_counter()
    subprocess.run(["dvc", "repro", "world"], cwd=ref, check=True, capture_output=True)
    span = time.perf_counter() - start
    expected = _hashes(ref / "data" / "world")

    repo = _repo(tmp_path / "repo")
    rng = random.Random(0)
    killed = 0
    for _ in range(RANDOM_KILLS):  # random moments of a forced rerun: DVC's bookkeeping, the stage, its writes
        proc = _run(repo, "dvc", "repro", "--force", "world")
        time.sleep(rng.uniform(0.2, span))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        assert _whole_or_absent(repo, expected)
    for point in WRITE_POINTS:  # the final write itself: killed with the folder or file complete, before its rename
        proc = _run(repo, "dvc", "repro", "--force", "world", env={FAULT_ENV: point})
        assert proc.wait() != 0
        killed += 1
        assert _whole_or_absent(repo, expected)
    # the stage run by hand over a good output, killed between moving the old one aside and the new one in
    subprocess.run(["dvc", "repro", "world"], cwd=repo, check=True, capture_output=True)
    assert _hashes(repo / "data" / "world") == expected
    proc = _run(repo, "eraselab", "world", env={FAULT_ENV: "dir-old-aside"})
    assert proc.wait() == -signal.SIGKILL
    killed += 1
    assert not (repo / "data" / "world").exists() and list((repo / SCRATCH).glob("data%2Fworld~old~*"))
    assert killed >= RANDOM_KILLS // 2 + len(WRITE_POINTS) + 1  # most random kills landed inside the run

    result = subprocess.run(["dvc", "repro", "world"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert _hashes(repo / "data" / "world") == expected
    assert sorted(p.name for p in (repo / "data").iterdir()) == ["world"]  # nothing written beside the output
    subprocess.run(["eraselab", "world"], cwd=repo, check=True, capture_output=True)  # any stage sweeps the scratch
    assert not list((repo / SCRATCH).iterdir())
    status = subprocess.run(["dvc", "status", "world"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "up to date" in status, status


def _dead_owner() -> str:
    import socket

    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{socket.gethostname()}-{proc.pid}"  # a process that has exited


def test_a_set_aside_output_goes_back_in_place_when_the_next_run_fails(tmp_path, monkeypatch):
    """Killed between the renames, then the rerun fails: the user keeps the artifact they had."""
    from eraselab.io import atomic_dir

    monkeypatch.chdir(tmp_path)
    target = tmp_path / "data" / "out"
    target.mkdir(parents=True)
    (target / "a.txt").write_text("good")
    (tmp_path / SCRATCH).mkdir(parents=True)
    aside = tmp_path / SCRATCH / f"data%2Fout~old~{_dead_owner()}"
    target.rename(aside)  # what a kill between the two renames leaves
    with pytest.raises(RuntimeError):
        with atomic_dir(target):
            raise RuntimeError("the rerun fails")
    assert (target / "a.txt").read_text() == "good" and not list((tmp_path / SCRATCH).iterdir())


def test_the_sweep_leaves_live_writers_and_other_machines_alone(tmp_path, monkeypatch):
    from eraselab.io import sweep

    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / SCRATCH
    scratch.mkdir(parents=True)
    import socket

    live = scratch / f"data%2Fa~tmp~{socket.gethostname()}-{os.getpid()}~x1"
    remote = scratch / "data%2Fb~tmp~other-node-4242~x2"
    dead = scratch / f"data%2Fc~tmp~{_dead_owner()}~x3"
    for entry in (live, remote, dead):
        entry.mkdir()
    assert sweep() == [f"removed {dead.name}"]
    assert live.exists() and remote.exists() and not dead.exists()
