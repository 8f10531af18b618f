"""Source positions: where each key and value of a spec sits in its file.

The loader records one position per data path; later stages report problems by
data path and :meth:`SourceMap.locate` turns that into ``file:line:col``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from graphspec.errors import Diagnostic, Path


@dataclass
class SourceMap:
    """Positions (1-based line, column) of every value and mapping key in one file."""

    file: str | None = None
    text: str = ""
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    redirects: dict[Path, tuple[Path, tuple[str, ...]]] = field(default_factory=dict)
    """Language 1.1 (:mod:`graphspec.expand`): ``("nodes", expanded_name)`` -> (the path where the node is
    written, in a block's definition or under a ``repeat:``; the instantiation notes of every diagnostic there)."""
    expansion: Any = None
    """The :class:`graphspec.expand.Expansion` the data came from (None for a spec without blocks/params)."""

    def original(self, path: Path) -> tuple[Path, tuple[str, ...]]:
        """Where a path of the (expanded) data is written, and the notes of the instantiation it is in."""
        path = tuple(path)
        if self.redirects and len(path) >= 2:
            target = self.redirects.get(path[:2])
            if target is not None:
                return target[0] + path[2:], target[1]
        return path, ()

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        """Position of the value (or the key) at ``path``; falls back to the nearest ancestor."""
        path = self.original(path)[0] if self.redirects else tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while True:
            if path in self.values:
                return self.values[path]
            if path in self.keys:
                return self.keys[path]
            if not path:
                return None
            path = path[:-1]

    def locate(self, diagnostic: Diagnostic, *, key: bool = False) -> Diagnostic:
        pos = self.position(diagnostic.path, key=key)
        line, col = pos if pos else (None, None)
        notes = self.original(diagnostic.path)[1] if self.redirects else ()
        if notes:
            return replace(diagnostic, file=self.file, line=line, col=col, notes=tuple(diagnostic.notes) + notes)
        return replace(diagnostic, file=self.file, line=line, col=col)
