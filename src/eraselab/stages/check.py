"""check: the stage every other stage depends on under DVC. It validates all of params.yaml (each method's
and attack's own keys too), refuses a dvc.yaml that no longer matches params.yaml, and writes each code
unit's fingerprint and each job's key (eraselab.graph): a stage depends on its own key (the digests of its
code and the values of its params) and its data inputs only.

It runs before any other stage, so a bad params.yaml stops `dvc repro` before DVC deletes any output."""

from __future__ import annotations

from eraselab.stages import Job, Out, paths

KEYS = ()


def jobs(params) -> list[Job]:
    return [Job("check", {}, ["src/eraselab", "pyproject.toml"],
                [Out(paths.FINGERPRINTS, cache=False, persist=True)], ["*"], mem_mb=500)]


def run(params) -> None:
    from eraselab import graph
    from eraselab.params import check_components

    check_components(params, "params.yaml")
    graph.check_dvc_yaml()
    changed = graph.write_fingerprints(params)
    print(f"params.yaml: ok; dvc.yaml: current; {len(changed)} fingerprint(s) and job key(s) changed" +
          (f": {', '.join(changed)}" if changed else ""))
