"""Plugins: erasure methods, attacks and concept detectors, registered as Python entry points.

Each is one module behind one small interface, named in ``pyproject.toml`` under
``[project.entry-points."eraselab.methods"]`` (``.attacks``, ``.detectors``) as ``name = "module:Class"``.
No shared file lists them: adding a method changes no existing stage's code dependencies, and a separate
package can plug one in by declaring the same entry point. Reading the table imports nothing (the graph is
built without torch); a class is imported only when used.

Names are lower-case; they become stage names, paths and `dvc exp show` columns.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

GROUPS = {"methods": "eraselab.methods", "attacks": "eraselab.attacks", "detectors": "eraselab.detectors"}
WHAT = {"methods": "erasure method", "attacks": "attack", "detectors": "detector"}


@lru_cache(maxsize=None)
def _table(kind: str) -> tuple[tuple[str, str], ...]:
    return tuple((ep.name, ep.value) for ep in entry_points(group=GROUPS[kind]))


def table(kind: str) -> dict[str, str]:
    """name -> "module:Class" for every installed plugin of ``kind`` (methods, attacks, detectors)."""
    return dict(_table(kind))


def module_of(kind: str, name: str) -> str:
    """The module a plugin lives in (its code is what a stage using it depends on)."""
    return lookup(kind, name).split(":")[0]


def lookup(kind: str, name: str) -> str:
    plugins = table(kind)
    if name not in plugins:
        raise KeyError(f"unknown {WHAT[kind]} {name!r}; valid choices: {', '.join(plugins)}")
    return plugins[name]


def load(kind: str, name: str):
    module, attr = lookup(kind, name).split(":")
    return getattr(importlib.import_module(module), attr)


def method(name: str):
    return load("methods", name)


def attack(name: str):
    return load("attacks", name)


METHODS = table("methods")
ATTACKS = table("attacks")
DETECTORS = table("detectors")
