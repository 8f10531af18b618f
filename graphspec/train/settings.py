"""Resolved train settings and command-line overrides.

An override (``--epochs 5``, ``--set train.batch_size=64``) is applied to the
spec's *data* before validation, so the same schema checks it as the file: a
bad override is reported like a bad key in the file, but located at the
command-line option rather than a line.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError, SchemaError, TrainError, did_you_mean
from graphspec.loader import LoadedSpec, load, loads
from graphspec.pipeline import CheckedSpec, check_loaded
from graphspec.schema.train import TRAIN_FIELDS, TrainSpec


def parse_set(text: str) -> tuple[tuple[str, ...], Any]:
    """``train.batch_size=64`` -> (("train", "batch_size"), 64); the value is read as YAML 1.2 (safe)."""
    where = f"--set {text}"
    if "=" not in text:
        raise TrainError([Diagnostic(code="bad-override", message=f"'{text}' is not KEY=VALUE", file=where,
                                     hint="e.g. --set train.batch_size=64 or --set train.validation={split: 0.1}")])
    key, _, value_text = text.partition("=")
    parts = tuple(p for p in key.strip().split("."))
    if not parts or any(not p for p in parts):
        raise TrainError([Diagnostic(code="bad-override", message=f"'{key}' is not a dotted key", file=where)])
    if parts[0] != "train":
        parts = ("train",) + parts  # 'batch_size=64' means train.batch_size
    if len(parts) > 1 and parts[1] not in TRAIN_FIELDS:
        raise TrainError([Diagnostic(code="bad-override", message=f"the train section has no field '{parts[1]}'",
                                     file=where, hint=did_you_mean(parts[1], TRAIN_FIELDS)
                                     or f"fields: {', '.join(TRAIN_FIELDS)}")])
    try:
        value = loads(value_text if value_text.strip() else "null", file=where).data
    except GraphspecError as error:
        raise TrainError([replace(d, file=where, line=None, col=None) for d in error.diagnostics]) from None
    return parts, value


def apply_overrides(data: Any, overrides: list[tuple[tuple[str, ...], Any]]) -> Any:
    """A copy of the spec's data with each override set (missing mappings are created)."""
    data = copy.deepcopy(data)
    if not isinstance(data, dict):
        return data
    for path, value in overrides:
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return data


def override_list(sets: list[str] | None = None, **named: Any) -> list[tuple[tuple[str, ...], Any]]:
    """Overrides from ``--set`` texts and named options (``epochs=5``; None means not given)."""
    result = [parse_set(text) for text in sets or ()]
    for key, value in named.items():
        if value is not None:
            result.append((("train", key), value))
    return result


def _text(path: tuple[str, ...], value: Any) -> str:
    return f"--set {'.'.join(path)}={value!r}"


def check_with_overrides(spec_path: str | FsPath, overrides: list[tuple[tuple[str, ...], Any]]) -> CheckedSpec:
    """Load and check a spec file with overrides applied; errors in an override name the option."""
    loaded = load(spec_path)
    if not overrides:
        return check_loaded(loaded, FsPath(spec_path))
    changed = LoadedSpec(data=apply_overrides(loaded.data, overrides), source=loaded.source)
    try:
        return check_loaded(changed, FsPath(spec_path))
    except SchemaError as error:
        fixed = []
        for diagnostic in error.diagnostics:
            for path, value in overrides:
                if tuple(diagnostic.path[:len(path)]) == path:
                    diagnostic = replace(diagnostic, file=_text(path, value), line=None, col=None)
                    break
            fixed.append(diagnostic)
        raise SchemaError(fixed) from None


def resolved_settings(checked: CheckedSpec, seed: int | None = None) -> dict[str, Any]:
    """The train section with every default filled in and the seed drawn if none was given."""
    train = checked.spec.train or TrainSpec()
    settings = train.model_dump(mode="json")
    if settings.get("seed") is None:
        settings["seed"] = seed if seed is not None else secrets.randbelow(2**31 - 1)
    return settings


def train_spec(checked: CheckedSpec) -> TrainSpec:
    return checked.spec.train or TrainSpec()
