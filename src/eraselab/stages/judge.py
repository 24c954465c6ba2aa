"""judge: train the toy world's concept judge CNN (only where a grid concept is a toy one)."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    from eraselab.stages.common import is_toy

    if not any(is_toy(params, c) for c in params.grid.concepts):
        return []
    return [Job("judge", {}, [paths.WORLD], [Out(paths.JUDGE), Out(paths.JUDGE_METRICS, directory=False)],
                ["world", "judge"], threads=params.judge.threads, mem_mb=3000)]


def run(params) -> None:
    from eraselab._compat import set_threads
    from eraselab.io import write_json
    from eraselab.models.judge import train_judge

    set_threads(params.judge.threads)
    metrics = train_judge(params, Path(paths.WORLD), Path(paths.JUDGE))
    write_json(paths.JUDGE_METRICS, metrics)
    print(metrics)
