"""Source positions: where each key and value of a spec sits in its file.

The loader records one position per data path; later stages report problems by
data path and :meth:`SourceMap.locate` turns that into ``file:line:col``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from graphspec.errors import Diagnostic, Path


@dataclass
class SourceMap:
    """Positions (1-based line, column) of every value and mapping key in one file."""

    file: str | None = None
    text: str = ""
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        """Position of the value (or the key) at ``path``; falls back to the nearest ancestor."""
        path = tuple(path)
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
        return replace(diagnostic, file=self.file, line=line, col=col)
