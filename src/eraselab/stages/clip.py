"""clip: train the toy world's tiny open_clip (only where a metric declares the toy CLIP)."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    from eraselab.stages.common import toy_clip

    if not toy_clip(params):
        return []
    return [Job("clip", {}, [paths.WORLD], [Out(paths.CLIP), Out(paths.CLIP_METRICS, directory=False)],
                ["world", "clip"], threads=params.clip.threads, mem_mb=3000)]


def run(params) -> None:
    from eraselab._compat import set_threads
    from eraselab.io import write_json
    from eraselab.models.clip import train_clip

    set_threads(params.clip.threads)
    metrics = train_clip(params, Path(paths.WORLD), Path(paths.CLIP))
    write_json(paths.CLIP_METRICS, metrics)
    print(metrics)
