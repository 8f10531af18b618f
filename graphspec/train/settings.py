"""Resolved train settings; command-line overrides are :mod:`graphspec.overrides` (re-exported here).

An override (``--epochs 5``, ``--set train.batch_size=64``) is applied to the
spec's *data* before validation, so the same schema checks it as the file: a
bad override is reported like a bad key in the file, but located at the
command-line option rather than a line.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import Field

from graphspec.overrides import (  # noqa: F401  (moved to graphspec.overrides; kept importable from here)
    Override, OverrideError, apply_overrides, check_with_overrides, override_list, parse_set)
from graphspec.pipeline import CheckedSpec
from graphspec.schema.train import TrainSpec


def resolved_settings(checked: CheckedSpec, seed: int | None = None) -> dict[str, Any]:
    """The train section with every default filled in and the seed drawn if none was given (JSON form of
    :func:`train_settings`)."""
    return train_settings(checked, seed=seed).as_json()


class TrainSettings(TrainSpec):
    """The train section as a run uses it, typed: every default filled in and the seed drawn (an
    ``int``, never None). ``as_json()`` is what ``settings.json`` holds and the settings hash covers."""

    seed: int = Field(ge=0, le=2**31 - 1)  # type: ignore[assignment]

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def train_settings(checked: CheckedSpec, seed: int | None = None, verbose: int | None = None) -> TrainSettings:
    """The run's :class:`TrainSettings`: the spec's train section (already validated, with overrides), the seed
    given in the spec, else ``seed`` (a resumed run's), else a random one; ``verbose`` replaces the spec's."""
    train = checked.spec.train or TrainSpec()
    values = {name: getattr(train, name) for name in TrainSpec.model_fields}
    if values["seed"] is None:
        values["seed"] = seed if seed is not None else secrets.randbelow(2**31 - 1)
    if verbose is not None:
        values["verbose"] = verbose
    return TrainSettings.model_construct(_fields_set=set(train.model_fields_set) | {"seed"}, **values)


def train_spec(checked: CheckedSpec) -> TrainSpec:
    return checked.spec.train or TrainSpec()
