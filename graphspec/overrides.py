"""Command-line overrides of any value in a spec: ``--set PATH=VALUE``.

An override is applied to the spec's *data*, after loading and before validation
(and before any later stage), so the same schema and the same checks judge it as
if it had been written in the file::

    --set compile.optimizer.learning_rate=0.01
    --set nodes.dense1.units=128
    --set 'train.validation={split: 0.1}'      # a YAML flow value: quote it for the shell
    --set train.validation.split=0.1           # the same, without shell quoting
    --set epochs=5                             # a train field may leave out 'train.'

``PATH`` is dotted; a number is a list index (``compile.metrics.0=auc``). ``VALUE`` is
read as YAML 1.2 by the spec loader itself (safe: no tags, no anchors). Missing
mappings on the way are created (``train.validation.split`` makes ``validation``),
but an override never invents a name of a named collection (a node, an input, a
shared layer, a block): a misspelt ``nodes.dense_1.units`` is an error with a
did-you-mean over the spec's own names. A problem in an override (its syntax, its
value, or anything a later stage finds under its path) is reported at the option,
``--set nodes.dense1.units=0: error[...]``, not at a line of the file.

Pure Python: nothing here imports TensorFlow.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any, Iterable

from graphspec.errors import Diagnostic, GraphspecError, TrainError, did_you_mean
from graphspec.loader import LoadedSpec, load, loads

PathTuple = tuple[str | int, ...]

NAMED_SECTIONS = ("inputs", "layers", "nodes", "blocks", "params", "variants")
"""Top-level mappings keyed by names the spec defines: an override may change what a name holds,
never invent a name (a typo would silently add a node)."""

_WHAT = {"inputs": "input", "layers": "shared layer", "nodes": "node", "blocks": "block",
         "params": "model parameter", "variants": "variant"}


class OverrideError(TrainError):
    """A ``--set`` option that cannot be applied (its syntax, its path or its YAML value).

    A subclass of :class:`TrainError` (where overrides were first reported) for compatibility."""

    stage = "override"


class Override(tuple):
    """``(path, value)`` -- a plain pair for every caller that unpacks it -- plus ``text``, the
    option as given (``--set train.batch_size=64``), which names the override in diagnostics."""

    def __new__(cls, path: Iterable[str | int], value: Any, text: str | None = None) -> "Override":
        self = super().__new__(cls, (tuple(path), value))
        self.text = text or f"--set {_dotted(self[0])}={_flow(value)}"
        return self

    @property
    def path(self) -> PathTuple:
        return self[0]

    @property
    def value(self) -> Any:
        return self[1]

    def __getnewargs__(self):
        return (self[0], self[1], self.text)


def _dotted(path: PathTuple) -> str:
    return ".".join(str(p) for p in path)


def _flow(value: Any) -> str:
    """A value as YAML flow text (JSON is YAML)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _error(where: str, message: str, hint: str | None = None, code: str = "bad-override") -> OverrideError:
    return OverrideError([Diagnostic(code=code, message=message, file=where, hint=hint)])


def _spec_sections() -> tuple[str, ...]:
    from graphspec.schema.blocks import SPEC_SECTIONS  # what a file may hold: language 1.1 sections too

    return SPEC_SECTIONS


def _section_fields(section: str) -> tuple[str, ...] | None:
    """The fields of a top-level section with a fixed set of them (None: any key, or not a mapping)."""
    if section == "train":
        from graphspec.schema.train import TRAIN_FIELDS

        return TRAIN_FIELDS
    if section == "compile":
        from graphspec.schema.model import CompileSpec

        return tuple(CompileSpec.model_fields)
    if section == "expect":
        from graphspec.schema.model import ExpectSpec

        return tuple(ExpectSpec.model_fields)
    return None


def parse_set(text: str) -> Override:
    """``train.batch_size=64`` -> ``(("train", "batch_size"), 64)``; the value is read as YAML 1.2 (safe).

    A first key that is no section of a spec but a train field (``epochs=5``) means ``train.epochs``.
    Raises :class:`OverrideError` (located at the option) for a malformed override or an unknown section
    or section field, with a did-you-mean."""
    where = f"--set {text}"
    if "=" not in text:
        raise _error(where, f"'{text}' is not KEY=VALUE (KEY a dotted path into the spec)",
                     "e.g. --set compile.optimizer.learning_rate=0.01 or --set 'train.validation={split: 0.1}'")
    key, _, value_text = text.partition("=")
    key = key.strip()
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    if not key or any(p == "" for p in parts):
        raise _error(where, f"'{key}' is not a dotted path", "e.g. nodes.dense1.units or train.epochs")
    if isinstance(parts[0], int):
        raise _error(where, f"'{key}' does not start with a section of the spec")
    sections = _spec_sections()
    if parts[0] not in sections:
        from graphspec.schema.train import TRAIN_FIELDS

        if parts[0] in TRAIN_FIELDS:
            parts.insert(0, "train")  # 'epochs=5' means train.epochs
        else:
            raise _error(where, f"a spec has no section '{parts[0]}'",
                         did_you_mean(parts[0], sections + TRAIN_FIELDS) or f"sections: {', '.join(sections)}")
    fields = _section_fields(parts[0])
    if fields is not None and len(parts) > 1 and parts[1] not in fields:
        raise _error(where, f"the {parts[0]} section has no field '{parts[1]}'",
                     did_you_mean(str(parts[1]), fields) or f"fields: {', '.join(fields)}")
    try:
        value = loads(value_text if value_text.strip() else "null", file=where).data
    except GraphspecError as error:
        raise OverrideError([replace(d, file=where, line=None, col=None) for d in error.diagnostics]) from None
    return Override(parts, value, where)


def override_list(sets: list[str] | None = None, **named: Any) -> list[Override]:
    """Overrides from ``--set`` texts and named train options (``epochs=5``; None means not given)."""
    result = [parse_set(text) for text in sets or ()]
    for key, value in named.items():
        if value is None:
            continue
        option = key.replace("_", "-")
        text = (f"--{option}" if value else f"--no-{option}") if isinstance(value, bool) else f"--{option} {value}"
        result.append(Override(("train", key), value, text))
    return result


def _as_override(item: Any) -> Override:
    if isinstance(item, Override):
        return item
    path, value = item
    return Override(path, value)


def apply_overrides(data: Any, overrides: Iterable) -> Any:
    """A copy of the spec's data with each override set, in order; raises :class:`OverrideError`.

    Missing mappings on the way are created (and a null one replaced); a name of a named
    collection (``nodes.NAME``) must exist; a scalar on the way is an error (set it whole)."""
    data = copy.deepcopy(data)
    if not isinstance(data, dict):
        return data  # not a spec at all: the schema says so
    for item in overrides:
        override = _as_override(item)
        _set(data, override)
    return data


def _set(data: dict, override: Override) -> None:
    path = override.path
    node: Any = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        here = _dotted(path[:depth]) or "the spec"
        if isinstance(node, list):
            if not isinstance(part, int) or not 0 <= part < len(node):
                raise _error(override.text, f"{here} is a list of {len(node)}: '{part}' is not an index in it",
                             f"give an index from 0 to {len(node) - 1}, or set the whole list: "
                             f"--set '{here}=[...]'" if node else f"set the whole list: --set '{here}=[...]'")
            key: str | int = part
        else:
            key = str(part)
            if depth == 1 and path[0] in NAMED_SECTIONS and key not in node:
                what = _WHAT[str(path[0])]
                names = [str(k) for k in node]
                raise _error(override.text, f"the spec has no {what} '{key}'",
                             did_you_mean(key, names) or (f"{what}s: {', '.join(names[:20])}" if names else None),
                             code="unknown-reference")
        if last:
            if depth == 1 and path[0] == "params" and isinstance(node.get(key), dict) and "type" in node[key]:
                node[key]["default"] = copy.deepcopy(override.value)  # a declared model parameter: its type checks the value
                return
            node[key] = copy.deepcopy(override.value)  # never shared between the specs it is applied to
            return
        child = node[key] if isinstance(node, list) or key in node else None
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, (dict, list)):
            target = _dotted(path[:depth + 1])
            raise _error(override.text, f"{target} is {_flow(child)!r}, not a mapping: '{_dotted(path[depth + 1:])}' "
                         "cannot be set inside it", f"set it whole, e.g. --set '{target}={{type: ..., "
                         f"{_dotted(path[depth + 1:])}: {_flow(override.value)}}}'"
                         if path[:2] == ("compile", "optimizer") else f"set it whole: --set '{target}=...'")
        node = child


def relocate(error: GraphspecError, overrides: Iterable) -> GraphspecError:
    """``error`` with each diagnostic under an override's path located at that option instead of the file.

    The last override whose path is a prefix of the diagnostic's path wins (it set the value last)."""
    items = [_as_override(o) for o in overrides]
    if not items:
        return error
    changed = []
    for diagnostic in error.diagnostics:
        for override in reversed(items):
            if tuple(diagnostic.path[:len(override.path)]) == override.path:
                diagnostic = replace(diagnostic, file=override.text, line=None, col=None)
                break
        changed.append(diagnostic)
    return type(error)(changed)


def apply_to_loaded(loaded: LoadedSpec, overrides: Iterable) -> LoadedSpec:
    """The loaded spec with overrides applied (its source map kept for the values not overridden)."""
    overrides = list(overrides)
    if not overrides:
        return loaded
    return LoadedSpec(data=apply_overrides(loaded.data, overrides), source=loaded.source)


def check_loaded_with_overrides(loaded: LoadedSpec, overrides: Iterable, path: FsPath | None = None, **kwargs):
    """:func:`graphspec.pipeline.check_loaded` on the overridden data; errors under an override name it."""
    from graphspec.pipeline import check_loaded

    overrides = [_as_override(o) for o in overrides]
    changed = apply_to_loaded(loaded, overrides)
    try:
        return check_loaded(changed, path, **kwargs)
    except GraphspecError as error:
        raise relocate(error, overrides) from None


def check_with_overrides(spec_path: str | FsPath, overrides: Iterable = ()):
    """Load and check a spec file with overrides applied; errors in an override name the option."""
    return check_loaded_with_overrides(load(spec_path), overrides, FsPath(spec_path))


def effective_spec(checked) -> tuple[dict, str]:
    """The canonical (overridden, defaults filled in) spec data and its hash."""
    from graphspec.canonical import canonical_data, spec_hash

    return canonical_data(checked.graph), spec_hash(checked.graph)
