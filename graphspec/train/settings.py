"""Resolved train settings; command-line overrides are :mod:`graphspec.overrides` (re-exported here).

An override (``--epochs 5``, ``--set train.batch_size=64``) is applied to the
spec's *data* before validation, so the same schema checks it as the file: a
bad override is reported like a bad key in the file, but located at the
command-line option rather than a line.
"""

from __future__ import annotations

import secrets
from typing import Any

from graphspec.overrides import (  # noqa: F401  (moved to graphspec.overrides; kept importable from here)
    Override, OverrideError, apply_overrides, check_with_overrides, override_list, parse_set)
from graphspec.pipeline import CheckedSpec
from graphspec.schema.train import TrainSpec


def resolved_settings(checked: CheckedSpec, seed: int | None = None) -> dict[str, Any]:
    """The train section with every default filled in and the seed drawn if none was given."""
    train = checked.spec.train or TrainSpec()
    settings = train.model_dump(mode="json")
    if settings.get("seed") is None:
        settings["seed"] = seed if seed is not None else secrets.randbelow(2**31 - 1)
    return settings


def train_spec(checked: CheckedSpec) -> TrainSpec:
    return checked.spec.train or TrainSpec()
