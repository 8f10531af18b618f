"""Shared helpers for the front-end tests (keep this small)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphspec.errors import GraphspecError

REPO = Path(__file__).resolve().parents[1]

# Test modules import these helpers as ``from testkit import ...`` (a conftest is not importable by a
# stable name when several test folders have their own conftest.py).
sys.modules.setdefault("testkit", sys.modules[__name__])

CLI = [sys.executable, "-c", "from graphspec.cli import main; main()"]
"""The ``graphspec`` entry point, run in a fresh interpreter."""

MINIMAL = """\
graphspec: 1
name: m
inputs:
  x: {shape: [8]}
nodes:
  d1: {type: Dense, units: 4}
outputs: [d1]
"""
"""The smallest valid spec; tests derive broken variants from it."""


def spec_text(body: str) -> str:
    """Dedent an inline spec written as an indented triple-quoted string."""
    return textwrap.dedent(body).lstrip("\n")


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: float = 60,
            env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``graphspec ARGS`` in a fresh Python process; returns the completed process (text output)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    full_env.update(env or {})
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env, **kwargs)


def diagnostics_of(func, *args, **kwargs):
    """Call a stage function that must fail; returns ``(error, diagnostics)``."""
    with pytest.raises(GraphspecError) as info:
        func(*args, **kwargs)
    return info.value, info.value.diagnostics


def codes(diagnostics) -> list[str]:
    return [d.code for d in diagnostics]


def check_errors(text: str, file: str = "spec.yaml"):
    """Run every pure-Python stage on spec text that must fail; returns the error."""
    from graphspec.pipeline import check_text

    with pytest.raises(GraphspecError) as info:
        check_text(text, file=file)
    return info.value
