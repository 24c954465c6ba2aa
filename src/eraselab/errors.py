"""The user's errors: bad params, bad or missing input files, unusable artifacts and models.

Each is reported by the `eraselab` command as one line per problem (`<file> line <n>: <key>: <bad value>:
<what is wrong; valid choices>`), exit status 2, no traceback (``eraselab --debug`` shows it). Anything
else that escapes a stage is a bug in eraselab and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, not with eraselab: the message says what and where."""


class ArtifactError(UserError, ValueError):
    """An artifact folder (an erased model, a LoRA, a searched prompt set) that cannot be used as it is."""


def shown(value, limit: int = 60) -> str:
    """A bad value as the error shows it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.lru_cache(maxsize=32)
def _yaml_lines(path: str, size: int, mtime_ns: int) -> dict[tuple, int]:
    import yaml

    lines: dict[tuple, int] = {}

    def walk(node, loc: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*loc, key.value)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                lines[(*loc, str(i))] = value.start_mark.line + 1
                walk(value, (*loc, str(i)))

    try:
        walk(yaml.compose(Path(path).read_text(encoding="utf-8-sig")), ())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return lines


def yaml_line(path: str | os.PathLike, loc) -> int | None:
    """The physical line of key ``loc`` (e.g. ("erase", "esd_x", "lr")) in a YAML file, or of its nearest
    parent that the file writes (a missing key's error points at its section); None if neither is there."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    lines = _yaml_lines(str(path), stat.st_size, stat.st_mtime_ns)
    loc = tuple(str(p) for p in loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def where(source: str | os.PathLike, loc=()) -> str:
    """``params.yaml line 12`` when the key is found in the file, else the file's name."""
    line = yaml_line(source, loc) if loc else None
    return f"{source} line {line}" if line else str(source)


class MissingInputError(UserError, FileNotFoundError):
    """A file a stage reads is not there: the message names it and the command (or download) that makes it."""
