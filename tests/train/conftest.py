"""Fixtures for the train stage: a tiny spec and its data in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from trainhelpers import TINY_SPEC, tiny_arrays

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture
def project(tmp_path: Path):
    """A folder with tiny.yaml and data.npz; returns a function writing a spec variant."""
    np.savez(tmp_path / "data.npz", **tiny_arrays())

    def write(text: str = TINY_SPEC, name: str = "tiny.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    write()
    return tmp_path
