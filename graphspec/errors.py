"""Located diagnostics and the one exception hierarchy every stage raises.

Each compiler stage collects *all* the problems it finds as :class:`Diagnostic`
objects and raises its own subclass of :class:`GraphspecError` carrying them.
Rendering (``spec.yaml:3:5: error[code]: message``) is written once, here.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Literal, Sequence

if TYPE_CHECKING:
    from graphspec.source import SourceMap

PathPart = str | int
Path = tuple[PathPart, ...]


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec, pointing at a place in its source file."""

    code: str
    """Stable machine-readable identifier, e.g. ``unknown-reference``."""
    message: str
    """What is wrong, quoting the names involved."""
    path: Path = ()
    """Where in the spec's data the problem is, e.g. ``("nodes", "conv1", "filters")``."""
    line: int | None = None
    """1-based line in the source file (None when the problem has no place)."""
    col: int | None = None
    """1-based column in the source file."""
    hint: str | None = None
    """How to fix it, e.g. ``did you mean 'conv2'?``."""
    severity: Literal["error", "warning"] = "error"
    file: str | None = None
    """The spec file's path as the user gave it."""
    notes: tuple[str, ...] = ()
    """Context, innermost first: for a node expanded from a block, which instantiation it is in
    (``in block 'bottleneck' called at resnet.yaml:41:5 with filters=128``)."""

    def __post_init__(self) -> None:
        # Messages quote user strings; a spec must not be able to drive the user's terminal.
        # and quoting a 100 KB name must not make a 100 KB message.
        object.__setattr__(self, "message", printable(_shortened(self.message)))
        if self.hint is not None:
            object.__setattr__(self, "hint", printable(_shortened(self.hint)))
        if self.notes:
            object.__setattr__(self, "notes", tuple(printable(_shortened(n)) for n in self.notes))

    def to_dict(self) -> dict:
        result = {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "path": ".".join(str(p) for p in self.path),
            "line": self.line,
            "col": self.col,
            "hint": self.hint,
        }
        if self.notes:
            result["notes"] = list(self.notes)
        return result


MAX_MESSAGE = 1_000
"""Characters of a message or hint kept (its start and end); the rest is elided."""


def _shortened(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE - 300]}... [{len(text) - MAX_MESSAGE + 200:,} characters] ...{text[-200:]}"


_EXCERPT = 160
"""Characters of a source line shown in an excerpt."""
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 and C1 controls (terminal escapes)
    "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"  # bidi, invisible, line separators
)


def printable(text: str) -> str:
    """``text`` with control characters shown as ``\\x1b``, ``\\u202e`` etc.

    C0/C1 controls could drive the user's terminal; bidirectional controls (U+202E, U+2066...)
    and invisible characters could make a message or an excerpt read differently from the
    file (Trojan Source). Both are escaped.
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class GraphspecError(Exception):
    """Base of every error graphspec reports to users; carries located diagnostics."""

    stage = "graphspec"

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(render(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class LoadError(GraphspecError):
    """The file cannot be read as safe YAML (syntax, tags, size, depth, duplicates)."""

    stage = "load"


class SchemaError(GraphspecError):
    """The data does not match the spec language (unknown keys, types, layer arguments)."""

    stage = "schema"


class ResolveError(GraphspecError):
    """References between names are broken (unknown names, cycles, bad outputs)."""

    stage = "resolve"


class InferError(GraphspecError):
    """Shapes or dtypes do not fit together."""

    stage = "infer"


class EmitError(GraphspecError):
    """Keras refused to build a layer, the model, or an ``expect:`` assertion failed."""

    stage = "emit"


class TrainError(GraphspecError):
    """Training settings or data do not fit the model."""

    stage = "train"


MAX_SUGGESTION_WORD = 100
"""Words longer than this get no 'did you mean' (no name in a spec or in Keras is this long)."""
SUGGESTION_BUDGET = 1_500_000
"""Work (about character comparisons; 1.5 million take about 0.2 s) that the 'did you mean'
hints of one stage may spend together (see :func:`suggestion_budget`)."""
_CUTOFF = 0.6

_budget: ContextVar[list[int] | None] = ContextVar("graphspec_suggestion_budget", default=None)


@contextmanager
def suggestion_budget(total: int = SUGGESTION_BUDGET):
    """Bound the work of every :func:`did_you_mean` inside the block, together.

    One hint compares the word with each candidate, and comparing two names costs the product
    of their lengths; thousands of misspelt names against thousands of candidates would be
    quadratic in the size of the spec. A stage runs in this block: once ``total`` is spent,
    later hints are left out (callers give their fallback hint), so the stage's hints cost at
    most a constant on top of its linear work.
    """
    token = _budget.set([total])
    try:
        yield
    finally:
        _budget.reset(token)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A ``did you mean 'x'?`` hint for a misspelt name, or None if nothing is close (or the budget is spent).

    The closest candidate by :class:`difflib.SequenceMatcher` ratio (at least 0.6, ties to the
    alphabetically last, as :func:`difflib.get_close_matches`), else one equal but for case.
    """
    if not isinstance(word, str) or not word or len(word) > MAX_SUGGESTION_WORD:
        return None
    budget = _budget.get()
    if budget is not None and budget[0] <= 0:
        return None
    spent = 0
    lowered = word.lower()
    exact: str | None = None
    # A ratio of 0.6 needs the shorter name at least 3/7 of the longer one: others cannot match.
    low, high = (3 * len(word)) // 7, (7 * len(word)) // 3 + 1
    import difflib  # only when a name is misspelt (not at every start)

    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word)
    best: tuple[float, str] | None = None
    for candidate in candidates:
        spent += 1
        if not isinstance(candidate, str) or not low <= len(candidate) <= high:
            continue
        if exact is None and candidate.lower() == lowered:
            exact = candidate
        matcher.set_seq1(candidate)
        spent += len(word) + len(candidate)
        if matcher.real_quick_ratio() >= _CUTOFF and matcher.quick_ratio() >= _CUTOFF:
            spent += len(word) * len(candidate)
            score = matcher.ratio()
            if score >= _CUTOFF and (best is None or (score, candidate) > best):
                best = (score, candidate)
        if budget is not None and spent > budget[0]:
            budget[0] = 0
            return None
    if budget is not None:
        budget[0] -= spent
    match = best[1] if best is not None else exact
    return f"did you mean '{match}'?" if match else None


def render(diagnostic: Diagnostic, source_lines: Sequence[str] | None = None) -> str:
    """``file:line:col: severity[code]: message`` plus the source line, a caret and the hint."""
    where = diagnostic.file or "graphspec"  # a problem of the run, not of a file
    if diagnostic.line is not None:
        where += f":{diagnostic.line}"
        if diagnostic.col is not None:
            where += f":{diagnostic.col}"
    text = f"{where}: {diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}"
    if source_lines is not None and diagnostic.line is not None and 0 < diagnostic.line <= len(source_lines):
        line = source_lines[diagnostic.line - 1].rstrip("\n")
        caret = (diagnostic.col or 1) - 1
        if len(line) > _EXCERPT:
            # A window of the line around the column, so the caret stays under the excerpt.
            start = max(0, min(caret - _EXCERPT // 2, len(line) - _EXCERPT))
            shown = line[start:start + _EXCERPT]
            prefix = "..." if start else ""
            caret = caret - start + len(prefix)
            line = prefix + shown + ("..." if start + _EXCERPT < len(line) else "")
        excerpt = printable(line)
        gutter = f"{diagnostic.line:>5} | "
        text += f"\n{gutter}{excerpt}"
        if diagnostic.col is not None:
            text += "\n" + " " * (len(gutter) - 2) + "| " + " " * len(printable(line[:caret])) + "^"
    if diagnostic.hint:
        text += f"\n  hint: {diagnostic.hint}"
    for note in diagnostic.notes:
        text += f"\n  note: {note}"
    return text


@dataclass
class DiagnosticSink:
    """Collects a stage's diagnostics so that all of them are reported at once.

    Given the spec's source map, it gives every diagnostic its file, line and column
    from the diagnostic's data path, so that stages only ever speak in data paths.
    """

    source: "SourceMap | None" = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic, *, key: bool = False) -> None:
        """Record a diagnostic; ``key=True`` points at the mapping key rather than its value."""
        if self.source is not None and diagnostic.line is None:
            diagnostic = self.source.locate(diagnostic, key=key)
        self.diagnostics.append(diagnostic)

    def error(self, code: str, message: str, path: Path = (), hint: str | None = None, *, key: bool = False) -> None:
        self.add(Diagnostic(code=code, message=message, path=tuple(path), hint=hint), key=key)

    def warning(self, code: str, message: str, path: Path = (), hint: str | None = None, *,
                key: bool = False) -> None:
        self.add(Diagnostic(code=code, message=message, path=tuple(path), hint=hint, severity="warning"), key=key)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    def sorted(self) -> list[Diagnostic]:
        """Diagnostics in file order (those without a place first)."""
        return sorted(self.diagnostics, key=lambda d: (d.line or 0, d.col or 0))

    def raise_if_errors(self, error_type: type[GraphspecError]) -> None:
        if self.has_errors:
            raise error_type(self.sorted())
