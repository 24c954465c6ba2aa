"""Ablations as DVC experiments: one variant of a method's params per `dvc exp run`, collected into a table.

A spec (``ablations/<name>.yaml``) names a method, the concepts whose no-attack cells are scored, and the
variants, each a set of that method's params::

    method: steerdiff
    concepts: [red, star, striped]
    variants:
      base: {}
      epsilon-0.5: {epsilon: 0.5}

``eraselab ablation --spec ablations/<name>.yaml --action run`` runs every variant with no experiment yet (on
any commit; ``--rerun`` runs them all again) as
``dvc exp run --temp -n <name>-<variant> -S erase.<method>.<key>=<value> evaluate_cell@<method>-<concept>-no_attack``
(so only that method's erase, images and evaluation stages run, from the cached base model; a variant
whose stages are unchanged since an earlier run comes from DVC's run-cache), then ``collect`` reads
``dvc exp show --json --all-commits`` into ``ablations/<name>.json``, which the report renders: each row
the newest experiment of that name, with the commit it ran on. Nothing is recomputed here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from eraselab.io import atomic_write_text

METRICS = ("target_rate", "heldout_rate", "retention", "clip")


class AblationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    concepts: list[str]
    attack: str = "no_attack"
    variants: dict[str, dict]

    @field_validator("method")
    @classmethod
    def _known_method(cls, v):
        from eraselab.registry import METHODS

        if v not in METHODS:
            raise ValueError(f"unknown erasure method {v!r}; valid choices: {', '.join(METHODS)}")
        return v

    @field_validator("variants")
    @classmethod
    def _names(cls, v):
        for name in v:
            if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"variant name {name!r}: use letters, digits, '-', '_' and '.' (it names a git ref)")
        return v


def load_spec(path: str | Path) -> AblationSpec:
    """Read and check a spec: every variant's keys must be the method's params (errors name the key)."""
    from eraselab.params import ParamsError, _component_params

    path = Path(path)
    if not path.is_file():
        choices = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise ParamsError(f"{path}: ablation spec not found; available: {', '.join(choices) or 'none'}")
    try:
        spec = AblationSpec.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValueError as err:
        raise ParamsError(f"{path}: invalid ablation spec\n{err}") from None
    for variant, values in spec.variants.items():
        _component_params("erase", spec.method, values, f"{path} (variant {variant})")
    return spec


def experiment_name(path: Path, variant: str) -> str:
    return f"{Path(path).stem}-{variant}"


def targets(spec: AblationSpec) -> list[str]:
    return [f"evaluate.{spec.method}.{c}" for c in spec.concepts]


def _set_args(spec: AblationSpec, values: dict) -> list[str]:
    return [a for k, v in values.items() for a in ("-S", f"erase.{spec.method}.{k}={json.dumps(v)}")]


def run(path: str | Path, dry: bool = False, rerun: bool = False) -> list[list[str]]:
    """Run the variants that have no experiment yet, on any commit (``collect`` takes the newest of each);
    ``rerun`` runs every variant again on this commit, e.g. after a change to the method's code. Returns
    the commands (run unless ``dry``)."""
    path = Path(path)
    spec = load_spec(path)
    done = set() if rerun else set(subprocess.run(["dvc", "exp", "ls", "--all-commits", "--name-only"],
                                                  capture_output=True, text=True, check=True).stdout.split())
    commands = []
    for variant, values in spec.variants.items():
        name = experiment_name(path, variant)
        if name in done:
            continue
        cmd = ["dvc", "exp", "run", "--temp", "-n", name, *_set_args(spec, values), *targets(spec)]
        commands.append(cmd)
        if not dry:
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    return commands


def _experiments(show: list[dict]):
    """(name, data, baseline commit) for every experiment in `dvc exp show --json --all-commits` output,
    newest baseline first."""
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            # a running experiment shows its baseline's metrics until it ends, a failed one has none of its own
            if (exp.get("executor") or {}).get("state") in ("running", "queued", "failed"):
                continue
            for rev in exp.get("revs") or []:
                if rev.get("name") and rev.get("data"):
                    yield rev["name"], {**rev["data"], "rev": rev.get("rev", "")}, baseline.get("rev", "")


def _committed(rev: str, file: str) -> dict | None:
    """A cell's metrics as the experiment's commit holds them: its dvc.lock names the file's hash, the DVC
    cache (where `dvc exp run` stored it) has the content. None where either is missing."""
    if not rev:
        return None
    import dvc.api

    try:
        return json.loads(dvc.api.read(file, rev=rev))
    except Exception:  # noqa: BLE001 - an experiment whose outputs were garbage-collected has no row data
        return None


def rows_from_show(spec: AblationSpec, path: Path, show: list[dict]) -> list[dict]:
    """One row per variant: its params (the method's, as run) and each concept's cell metrics."""
    found: dict = {}
    for name, data, baseline in _experiments(show):
        found.setdefault(name, (data, baseline))  # a variant rerun on a newer commit replaces the older run
    rows = []
    for variant in spec.variants:
        if experiment_name(path, variant) not in found:
            continue
        data, baseline = found[experiment_name(path, variant)]
        everything = data["params"]["params.yaml"]["data"]
        params = everything["erase"][spec.method]
        metrics = {}
        for concept in spec.concepts:
            file = f"metrics/cells/{spec.method}/{concept}/{spec.attack}.json"
            cell = (data.get("metrics") or {}).get(file, {}).get("data") or _committed(data.get("rev", ""), file)
            if cell is not None:
                metrics[concept] = {k: cell[k] for k in METRICS}
        rows.append({"variant": variant, "changed": spec.variants[variant], "params": params, "metrics": metrics,
                     "commit": baseline[:7], "profile": (everything.get("report") or {}).get("profile")})
    return rows


def collect(path: str | Path, out: str | Path | None = None) -> dict:
    path = Path(path)
    spec = load_spec(path)
    show = json.loads(subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True,
                                     check=True).stdout)
    rows = rows_from_show(spec, path, show)
    missing = [v for v in spec.variants if v not in {r["variant"] for r in rows}]
    result = {"method": spec.method, "concepts": spec.concepts, "attack": spec.attack, "rows": rows,
              "missing": missing}
    atomic_write_text(Path(out) if out else path.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    return result


def table(result: dict, profile: str | None = None) -> tuple[list[str], list[list]]:
    """Header and rows for the report: variant, what it changes, then target/held-out/retention per concept;
    with ``profile``, only the rows run with it (numbers of another profile's sizes do not compare)."""
    header = ["variant", "changed", "commit"]
    for c in result["concepts"]:
        header += [f"{c} target", f"{c} held-out", f"{c} retention"]
    rows = []
    for r in result["rows"]:
        if profile is not None and r.get("profile") != profile:
            continue
        row = [r["variant"], ", ".join(f"{k}={v}" for k, v in r["changed"].items()) or "defaults", r.get("commit", "")]
        for c in result["concepts"]:
            m = r["metrics"].get(c)
            row += [m["target_rate"], m["heldout_rate"], m["retention"]] if m else ["–"] * 3
        rows.append(row)
    return header, rows
