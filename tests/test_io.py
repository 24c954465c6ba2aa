"""Atomic outputs: a stage's artifact appears whole or not at all, also when the process is killed."""

import os
import signal
import subprocess
import sys
import time

import pytest

from eraselab.io import atomic_dir, write_json


def test_failed_write_leaves_target_untouched(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("stage crashed")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_success_replaces_whole_directory(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_killed_stage_leaves_no_partial_output_and_a_rerun_completes(tmp_path):
    (tmp_path / "params.yaml").write_text("world: {n_train: 200000, n_judge_train: 10, n_judge_test: 10}\n")
    proc = subprocess.Popen([sys.executable, "-m", "eraselab.cli", "world"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list((tmp_path / ".eraselab" / "tmp").glob("data%2Fworld~tmp~*")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "data" / "world").exists()
    (tmp_path / "params.yaml").write_text("world: {n_train: 30, n_judge_train: 10, n_judge_test: 10}\n")
    subprocess.run([sys.executable, "-m", "eraselab.cli", "world"], cwd=tmp_path, check=True,
                   capture_output=True)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["world"]
    assert (tmp_path / "data" / "world" / "world.json").exists()
    assert not list((tmp_path / ".eraselab" / "tmp").iterdir())  # the killed run's temp folder was swept


def test_write_json_is_atomic(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(tmp_path / "m.json", {"a": object()})
    assert (tmp_path / "m.json").read_text().strip() == '{\n  "a": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_stage_records_land_under_logs_stages_only_for_outputs_in_the_repo(tmp_path, monkeypatch):
    import json

    from eraselab.io import record_stage

    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    record_stage("erase", "models/erased/uce/red", 1.5)
    record_stage("erase", str(repo / "models/erased/uce/star"), 2.0)  # absolute, inside the repo
    record_stage("erase", str(tmp_path / "scratch/out"), 3.0)  # a hand-run stage elsewhere: not recorded
    record_stage("report", None, 4.0)
    found = sorted(p.relative_to(repo / "logs/stages").as_posix() for p in (repo / "logs/stages").rglob("*.json"))
    assert found == ["models/erased/uce/red.json", "models/erased/uce/star.json", "report.json"]
    record = json.loads((repo / "logs/stages/models/erased/uce/red.json").read_text())
    assert record["stage"] == "erase" and record["wall_s"] == 1.5 and record["peak_rss_mb"] > 0
