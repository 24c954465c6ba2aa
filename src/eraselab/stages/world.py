"""world: render the toy world's image splits (only where a toy model, judge or CLIP is trained)."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths


def needed(params) -> bool:
    from eraselab.stages.common import toy_clip

    return (params.model.source == "base_model" or toy_clip(params)
            or any(c not in params.real_concepts for c in params.grid.concepts))


KEYS = ()


def jobs(params) -> list[Job]:
    return [Job("world", {}, [], [Out(paths.WORLD)], ["world"], mem_mb=2000)] if needed(params) else []


def run(params) -> None:
    from eraselab.world.dataset import WorldSpec, write_world

    p = params.world
    sizes = {"train": p.n_train, "judge_train": p.n_judge_train, "judge_test": p.n_judge_test}
    write_world(WorldSpec.from_params(p), sizes, Path(paths.WORLD))
