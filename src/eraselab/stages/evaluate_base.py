"""evaluate_base: the judge's accuracy and the CLIP score of the toy base model's held-out images."""

from __future__ import annotations

from pathlib import Path

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    if params.model.source != "base_model":
        return []
    from eraselab.stages.common import clip_deps

    return [Job("evaluate_base", {}, [paths.BASE_IMAGES, paths.JUDGE, *clip_deps(params)],
                [Out(paths.BASE_METRICS, directory=False)], ["generate.threads", "evaluation.clip_score"],
                threads=params.generate.threads, mem_mb=2000)]


def run(params) -> None:
    from eraselab._compat import set_threads
    from eraselab.evaluation.concept_accuracy import clip_score, concept_accuracy
    from eraselab.generate import read_images
    from eraselab.io import write_json
    from eraselab.models.judge import load_judge
    from eraselab.stages.scoring import scorer

    set_threads(params.generate.threads)
    images, records = read_images(Path(paths.BASE_IMAGES))
    metrics = concept_accuracy(load_judge(Path(paths.JUDGE)), images, records)
    clip = scorer(params)
    metrics["clip_score"] = clip_score(clip, images, records)
    metrics["clip_spec"] = clip.declaration()
    write_json(paths.BASE_METRICS, metrics)
    print({k: metrics[k] for k in ("accuracy", "clip_score")})
