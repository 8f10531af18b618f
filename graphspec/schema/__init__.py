"""Stage 2 — schema: plain data to a typed :class:`Spec`.

Pydantic checks the structure (unknown keys, types, node forms); the catalogue
checks Keras' vocabulary (:mod:`graphspec.schema.semantics`). Pydantic's errors
are translated into located diagnostics with hints, and every problem of the
stage is reported at once.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from graphspec.errors import Diagnostic, DiagnosticSink, Path, SchemaError, did_you_mean, suggestion_budget
from graphspec.loader import LoadedSpec
from graphspec.schema.model import (
    NODE_FORMS,
    RESERVED_NODE_KEYS,
    node_form,
    CompileSpec,
    ExpectSpec,
    InputSpec,
    LayerConfig,
    LayerNode,
    ModelNode,
    ObjectConfig,
    OpNode,
    SequentialNode,
    SharedCall,
    Spec,
    describe_fields,
)
from graphspec.schema.semantics import SemanticChecker

__all__ = [
    "RESERVED_NODE_KEYS", "CompileSpec", "ExpectSpec", "InputSpec", "LayerConfig", "LayerNode", "ModelNode",
    "ObjectConfig", "OpNode", "SequentialNode", "SharedCall", "Spec", "describe_fields", "json_schema", "validate",
]

class _OtherMember(Exception):
    """The error belongs to a union member whose container kind differs from the data's."""

    def __init__(self, path: Path | None = None):
        super().__init__()
        self.path = path
        """For a scalar member's error on a mapping or list: where, in case no other member says more."""


def _data_path(data: Any, loc: tuple) -> Path:
    """Pydantic's error location with its union-member labels removed: the path in the user's data.

    Raises :class:`_OtherMember` for errors of a ``list[...]`` member when the data is a
    mapping (and vice versa): they say nothing useful about what the user wrote.
    """
    path: list = []
    current = data
    for part in loc:
        if isinstance(part, str) and part.startswith(("list[", "dict[")):
            if (part.startswith("list[") and isinstance(current, dict)) or \
                    (part.startswith("dict[") and isinstance(current, list)):
                raise _OtherMember
            continue
        if isinstance(part, str) and isinstance(current, (dict, list)) and part not in current and \
                (part.startswith("literal[") or part in _SCALAR_LABELS):
            raise _OtherMember(tuple(path))  # e.g. 'best_model: {...}' against 'Literal[False]'
        if isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and not isinstance(current, (dict, list)):
            continue
        elif isinstance(part, str) and ("[" in part or "-" in part or part in _UNION_LABELS or
                                        part in _model_names()):
            continue  # a union member's label, e.g. 'list[str]', 'layer-node' or 'BestModelSpec'
        else:
            path.append(part)  # a missing key: point at it through its parent
            current = None
    return tuple(path)


_UNION_LABELS = {"str", "int", "float", "bool", "none", "ObjectConfig", "LayerConfig"}
_SCALAR_LABELS = {"str", "int", "float", "bool", "none"}
_MODEL_INSTANCE = re.compile(r"a valid dictionary or instance of [A-Za-z_][A-Za-z0-9_]*")
"""Pydantic's wording for a model's type error names the (internal) class."""
_MODEL_NAMES: set[str] = set()


def _model_names() -> set[str]:
    """Class names of the spec's Pydantic models: Pydantic labels a union member by its class name."""
    if not _MODEL_NAMES:
        _train_spec()  # the train section's models are imported on demand
        import graphspec.schema.blocks  # noqa: F401 (so are language 1.1's)
        stack = [BaseModel]
        while stack:
            for sub in stack.pop().__subclasses__():
                stack.append(sub)
                if sub.__module__.startswith("graphspec."):
                    _MODEL_NAMES.add(sub.__name__)
    return _MODEL_NAMES


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The Pydantic models an annotation can hold (through Optional, Union, Annotated, list, dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _train_spec() -> type[BaseModel]:
    from graphspec.schema.train import TrainSpec

    return TrainSpec


_LAZY_SECTIONS = {"train": _train_spec}
"""Top-level sections validated by a model imported on demand (see :func:`validate`)."""


def _fields_at(path: Path, data: Any) -> list[str]:
    """Allowed keys of the mapping holding ``path``'s last key, for 'did you mean' on unknown keys.

    Walks the Spec's own field annotations along the data, so every section (train
    included) gets hints without a hand-kept table.
    """
    from graphspec.schema.blocks import SPEC_SECTIONS, SpecDocument  # what a file may hold, 1.1 included

    models: list[type[BaseModel]] = [SpecDocument]
    node = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
        if models == [SpecDocument] and part in _LAZY_SECTIONS:
            models = [_LAZY_SECTIONS[part]()]
        elif isinstance(part, str) and any(part in m.model_fields for m in models):
            annotation = next(m.model_fields[part].annotation for m in models if part in m.model_fields)
            models = _models_in(annotation)
        # else: an item of a list or of a name-keyed mapping, described by the container's models
        form = node_form(node) if isinstance(node, dict) else None
        if form and any(m is LayerNode for m in models):
            models = [dict(NODE_FORMS.values())[form]]
    if models == [SpecDocument]:
        return list(SPEC_SECTIONS)
    fields: list[str] = []
    for model in models:
        fields.extend(f for f in model.model_fields if f not in fields)
    return fields


def _translate(error: dict, data: Any) -> Diagnostic:
    loc = tuple(error["loc"])
    path = _data_path(data, loc)
    kind = error["type"]
    message = error["msg"]
    hint = None
    code = "schema"
    where = ".".join(str(p) for p in path) or "the spec"
    if kind == "extra_forbidden":
        code = "unknown-key"
        key = path[-1] if path else "?"
        message = f"unknown key '{key}'" + (f" in {'.'.join(map(str, path[:-1]))}" if len(path) > 1 else "")
        hint = did_you_mean(str(key), _fields_at(path, data))
        if hint is None:
            allowed = _fields_at(path, data)
            hint = f"allowed keys here: {', '.join(allowed)}" if allowed else None
    elif kind == "missing":
        code = "missing-key"
        message = f"'{path[-1]}' is required" + (f" in {'.'.join(map(str, path[:-1]))}" if len(path) > 1 else "")
    elif kind == "node-form":
        code = "node-form"
        message = f"node '{path[-1] if path else '?'}' needs exactly one of 'type', 'shared', 'sequential', 'model' or 'op'"
        hint = ("'type: Dense' applies a Keras layer, 'shared: name' calls a shared layer, "
                "'sequential: [...]' a block, 'model: file.keras' a saved model, 'op: add' a keras.ops call")
    elif path == ("graphspec",):
        code = "bad-value"
        message = "unsupported format version; this graphspec reads 'graphspec: 1'"
    elif kind == "literal_error":
        code = "bad-value"
        message = f"{where}: {message}"
    elif kind == "string_pattern_mismatch":
        code = "bad-name"
        message = f"{error.get('input')!r} is not a valid name or reference"
        hint = "names use letters, digits and '_' and do not start with a digit; index outputs as node[1]"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than", "too_short", "too_long",
                  "string_too_short", "string_too_long"):
        code = "bad-value"
        message = f"{where}: {message}"
    elif kind == "value_error":
        code = "bad-value"
        message = f"{where}: {message.removeprefix('Value error, ')}"
    else:
        code = "bad-type"
        message = f"{where}: {_MODEL_INSTANCE.sub('a mapping', message.replace('Input should be', 'expected'))}"
    return Diagnostic(code=code, message=message, path=path, hint=hint)


def translate_errors(errors: list[dict], data: Any) -> tuple[dict[Path, Diagnostic], set[Path]]:
    """Pydantic's errors for ``data`` as located diagnostics, one per place in the data, and the places whose
    problem is a mapping's key itself (a bad name), which a diagnostic points at rather than the value.

    A value that failed several union members gets one diagnostic saying what each would have needed; an
    error of a member whose container kind differs from the data's is used only when no other member said
    anything about that place (a mapping where only scalars are allowed)."""
    seen: dict[Path, Diagnostic] = {}
    at_key: set[Path] = set()
    scalar_only: dict[Path, dict] = {}
    for error in errors:
        try:
            diagnostic = _translate(error, data)
        except _OtherMember as other:
            if other.path is not None:
                scalar_only.setdefault(other.path, error)
            continue
        if "[key]" in error["loc"]:
            at_key.add(diagnostic.path)
        previous = seen.get(diagnostic.path)
        if previous is not None:
            # One value failed several union members: say what each would have needed, once.
            if previous.code == "bad-type" and diagnostic.code == "bad-type":
                expected = diagnostic.message.split("expected", 1)[-1].strip()
                if expected not in previous.message:
                    seen[diagnostic.path] = Diagnostic(code="bad-type", path=previous.path, hint=previous.hint,
                                                       message=f"{previous.message}, or {expected}")
            continue
        seen[diagnostic.path] = diagnostic
    if scalar_only:
        covered = {p[:i] for p in seen for i in range(len(p) + 1)}
        for path, error in scalar_only.items():
            # A mapping (or list) where only scalars are allowed: no other member said anything about it.
            if path not in covered:
                seen[path] = _translate({**error, "loc": path}, data)
    return seen, at_key


def validate(loaded: LoadedSpec) -> Spec:
    """Validate loaded data into a :class:`Spec`; raises :class:`SchemaError` with every problem."""
    with suggestion_budget():  # 'did you mean' hints: bounded work for the whole stage
        return _validate(loaded)


def _validate(loaded: LoadedSpec) -> Spec:
    sink = DiagnosticSink(source=loaded.source)
    data = loaded.data
    if not isinstance(data, dict):
        sink.add(Diagnostic(code="not-a-mapping", line=1, col=1, file=loaded.source.file,
                            message="a spec is a mapping with 'graphspec', 'name', 'inputs', 'nodes' and 'outputs'",
                            hint=None if data is not None else "the file is empty"))
        raise SchemaError(sink.diagnostics)
    spec: Spec | None = None
    errors: list[dict] = []
    sections: dict[str, BaseModel] = {}
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        errors.extend(exc.errors(include_url=False))
    for key, model in _LAZY_SECTIONS.items():
        if data.get(key) is not None:
            try:
                sections[key] = model().model_validate(data[key])
            except ValidationError as exc:
                errors.extend({**e, "loc": (key, *e["loc"])} for e in exc.errors(include_url=False))
    seen, at_key = translate_errors(errors, data)
    semantic = DiagnosticSink()
    SemanticChecker(semantic).check_spec(data)
    for diagnostic in semantic.diagnostics:
        seen.setdefault(diagnostic.path, diagnostic)
    for diagnostic in seen.values():
        sink.add(diagnostic, key=diagnostic.path in at_key or diagnostic.code in (
            "unknown-key", "unknown-argument", "name-argument", "unknown-call-argument"))
    sink.raise_if_errors(SchemaError)
    assert spec is not None
    return spec.model_copy(update=sections) if sections else spec


def json_schema() -> dict:
    """The JSON Schema of the spec language, with per-layer argument names for editors."""
    from graphspec.schema.jsonschema import build_json_schema

    return build_json_schema()
