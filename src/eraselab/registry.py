"""Plugins: erasure methods, attacks and concept detectors, registered as Python entry points.

Each is one module behind one small interface, named in ``pyproject.toml`` under
``[project.entry-points."eraselab.methods"]`` (``.attacks``, ``.detectors``) as ``name = "module:Class"``.
No shared file lists them: adding a method changes no existing stage's code dependencies, and a separate
package can plug one in by declaring the same entry point. Reading the table imports nothing (the graph is
built without torch); a class is imported only when used.

Names are lower-case; they become stage names, paths and `dvc exp show` columns.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path

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


def source_file(module: str, root: Path) -> Path | None:
    """The source file of ``module``: under ``root``/src (the repository's own code), else where it is
    installed (a plugin from another package)."""
    base = root / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    if module.split(".")[0] == "eraselab":
        return None
    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


@lru_cache(maxsize=None)
def _tree(file: Path, mtime: float) -> ast.Module:
    return ast.parse(file.read_text(), str(file))


def parse_source(file: Path) -> ast.Module:
    return _tree(file, file.stat().st_mtime)


def declared(kind: str, name: str, attr: str, default, root: Path | None = None):
    """A plugin class's literal class attribute (``sees_defence``, ``needs_image_features``), read from its
    source, following base classes defined in the same module; ``default`` where none sets it. The graph
    is built without importing torch, so the class is never imported here."""
    module, cls = lookup(kind, name).split(":")
    file = source_file(module, Path(root or Path.cwd()))
    if file is None:
        return default
    classes = {node.name: node for node in parse_source(file).body if isinstance(node, ast.ClassDef)}

    def find(class_name: str):
        node = classes.get(class_name)
        if node is None:
            return default
        for stmt in node.body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == attr for t in targets) and stmt.value is not None:
                return ast.literal_eval(stmt.value)
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in classes:
                return find(base.id)
        return default

    return find(cls)


METHODS = table("methods")
ATTACKS = table("attacks")
DETECTORS = table("detectors")
