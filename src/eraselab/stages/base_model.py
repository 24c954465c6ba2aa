"""base_model: train the toy text-to-image model (diffusers layout) on the world's images."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    if params.model.source != "base_model":
        return []
    return [Job("base_model", {}, [paths.WORLD],
                [Out(paths.BASE_MODEL), Out(paths.BASE_PLOTS), Out(paths.BASE_TRAIN_METRICS, directory=False)],
                ["world", "base_model"], threads=params.base_model.threads, mem_mb=6000)]


def run(params) -> None:
    from eraselab._compat import set_threads
    from eraselab.io import record_timing, write_json
    from eraselab.models.base_model import train_base_model

    set_threads(params.base_model.threads)
    summary, log = train_base_model(params, Path(paths.WORLD), Path(paths.BASE_MODEL))
    record_timing(paths.BASE_MODEL, summary.pop("time_s"))
    write_json(paths.BASE_TRAIN_METRICS, summary)
    for stage in ("vae", "unet"):
        write_json(Path(paths.BASE_PLOTS) / f"{stage}.json", [r for r in log if r["stage"] == stage])
    print(summary)
