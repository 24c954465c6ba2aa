from pathlib import Path

from eraselab.params import parse_params

# Validate params.yaml once, before any rule runs: a bad key stops the workflow with its name.
PARAMS = parse_params(config, "params.yaml")
GRID = config["grid"]


wildcard_constraints:
    method="[a-z0-9_]+",
    concept="[a-z0-9_-]+",
    attack="[a-z0-9_]+",


def code(*paths):
    """Code deps as files (Snakemake sees a folder's changes only through its files); dvc.yaml names the folders."""
    files = []
    for path in map(Path, paths):
        files += sorted(str(f) for f in path.rglob("*.py")) if path.is_dir() else [str(path)]
    return files


def section(*keys):
    """The params a rule reads, so Snakemake reruns it when they change (as DVC's `params:` does)."""
    out = {}
    for key in keys:
        value = config
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out
