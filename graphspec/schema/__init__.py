"""Stage 2 — schema: plain data to a typed :class:`Spec`.

Pydantic checks the structure (unknown keys, types, node forms); the catalogue
checks Keras' vocabulary (:mod:`graphspec.schema.semantics`). Pydantic's errors
are translated into located diagnostics with hints, and every problem of the
stage is reported at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from graphspec.errors import Diagnostic, DiagnosticSink, Path, SchemaError, did_you_mean
from graphspec.load import LoadedSpec
from graphspec.schema.model import (
    RESERVED_NODE_KEYS,
    CompileSpec,
    ExpectSpec,
    InputSpec,
    LayerConfig,
    LayerNode,
    ModelNode,
    ObjectConfig,
    SequentialNode,
    SharedCall,
    Spec,
)
from graphspec.schema.semantics import SemanticChecker

__all__ = [
    "RESERVED_NODE_KEYS", "CompileSpec", "ExpectSpec", "InputSpec", "LayerConfig", "LayerNode", "ModelNode",
    "ObjectConfig", "SequentialNode", "SharedCall", "Spec", "validate",
]

_MODEL_FOR_PATH: list[tuple[tuple, type[BaseModel]]] = []


class _OtherMember(Exception):
    """The error belongs to a union member whose container kind differs from the data's."""


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
        if isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(part, str) and not isinstance(current, (dict, list)):
            continue
        elif isinstance(part, str) and ("[" in part or "-" in part or part in _UNION_LABELS):
            continue  # a union member's label, e.g. 'list[str]' or 'layer-node'
        else:
            path.append(part)  # a missing key: point at it through its parent
            current = None
    return tuple(path)


_UNION_LABELS = {"str", "int", "float", "bool", "none", "ObjectConfig", "LayerConfig"}


def _fields_at(path: Path, data: Any) -> list[str]:
    """Allowed keys at a data path, for 'did you mean' on unknown keys."""
    parent = path[:-1]
    model: type[BaseModel] | None = Spec
    node = data
    for i, part in enumerate(parent):
        if model is None:
            return []
        if isinstance(node, dict):
            node = node.get(part)
        if model is Spec and i == 0:
            model = {"inputs": InputSpec, "compile": CompileSpec, "expect": ExpectSpec, "nodes": None,
                     "layers": None}.get(part)
            if part in ("nodes", "layers"):
                model = "container"  # type: ignore[assignment]
            continue
        if model == "container":
            if isinstance(node, dict):
                if "shared" in node:
                    model = SharedCall
                elif "sequential" in node:
                    model = SequentialNode
                elif "model" in node:
                    model = ModelNode
                else:
                    model = LayerNode
            continue
        if model is InputSpec:
            model = None if i > 1 else InputSpec
            continue
        return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


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
        message = f"node '{path[-1] if path else '?'}' needs exactly one of 'type', 'shared', 'sequential' or 'model'"
        hint = ("'type: Dense' applies a Keras layer, 'shared: name' calls a shared layer, "
                "'sequential: [...]' a block, 'model: file.keras' a saved model")
    elif path == ("graphspec",):
        code = "bad-value"
        message = "unsupported format version; this graphspec reads 'graphspec: 1'"
    elif kind == "literal_error":
        code = "bad-value"
        message = f"{where}: {message}"
        if path == ("graphspec",):
            message = "unsupported format version; this graphspec reads 'graphspec: 1'"
    elif kind == "string_pattern_mismatch":
        code = "bad-name"
        message = f"{error.get('input')!r} is not a valid name or reference"
        hint = "names use letters, digits and '_' and do not start with a digit; index outputs as node[1]"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than", "too_short", "too_long"):
        code = "bad-value"
        message = f"{where}: {message}"
    else:
        code = "bad-type"
        message = f"{where}: {message.replace('Input should be', 'expected')}"
    return Diagnostic(code=code, message=message, path=path, hint=hint)


def validate(loaded: LoadedSpec) -> Spec:
    """Validate loaded data into a :class:`Spec`; raises :class:`SchemaError` with every problem."""
    sink = DiagnosticSink(source=loaded.source)
    data = loaded.data
    if not isinstance(data, dict):
        sink.add(Diagnostic(code="not-a-mapping", line=1, col=1, file=loaded.source.file,
                            message="a spec is a mapping with 'graphspec', 'name', 'inputs', 'nodes' and 'outputs'",
                            hint=None if data is not None else "the file is empty"))
        raise SchemaError(sink.diagnostics)
    spec: Spec | None = None
    seen: dict[Path, Diagnostic] = {}
    at_key: set[Path] = set()  # problems with a mapping key itself (a bad name)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            try:
                diagnostic = _translate(error, data)
            except _OtherMember:
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
    semantic = DiagnosticSink()
    SemanticChecker(semantic).check_spec(data)
    for diagnostic in semantic.diagnostics:
        seen.setdefault(diagnostic.path, diagnostic)
    for diagnostic in seen.values():
        sink.add(diagnostic, key=diagnostic.path in at_key or diagnostic.code in (
            "unknown-key", "unknown-argument", "name-argument", "unknown-call-argument"))
    sink.raise_if_errors(SchemaError)
    assert spec is not None
    return spec


def json_schema() -> dict:
    """The JSON Schema of the spec language, with per-layer argument names for editors."""
    from graphspec.schema.jsonschema import build_json_schema

    return build_json_schema()
