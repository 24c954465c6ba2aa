"""prompts: the toy base model's held-out evaluation prompts."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    if params.model.source != "base_model":
        return []
    return [Job("prompts", {}, [], [Out(paths.HELDOUT_PROMPTS, directory=False)],
                ["world", "prompts.seed", "prompts.per_combination"], mem_mb=500)]


def run(params) -> None:
    from eraselab.prompts.world_prompts import evaluation_prompts, write_prompts
    from eraselab.world.dataset import WorldSpec

    spec = WorldSpec.from_params(params.world)
    write_prompts(Path(paths.HELDOUT_PROMPTS), evaluation_prompts(spec, params.prompts.per_combination, params.prompts.seed))
