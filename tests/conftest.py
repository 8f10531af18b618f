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


def assert_grows_linearly(seconds_at, small: int, large: int, repeats: int = 3, slack: float = 3.0) -> None:
    """Fail if the work ``seconds_at(n)`` measures grows faster than linearly from ``small`` to ``large``.

    A bound on wall-clock seconds fails whenever the machine is slow or busy (CI's once took 1.26 s for
    a 1.0 s bound); a ratio of two sizes on the same machine does not. Each size's best of ``repeats``
    runs is taken, and ``slack`` times the linear ratio is allowed: a quadratic walk grows by the
    ratio squared (here 100x for 10x the nodes), far past it.
    """
    import math

    def best(n: int) -> float:
        return min(seconds_at(n) for _ in range(repeats))

    small_s, large_s = best(small), best(large)
    allowed = slack * (large / small) * small_s + 0.02  # + 20 ms: timer and allocator noise at the small size
    assert large_s <= allowed, (f"{small:,} -> {large:,}: {small_s * 1e3:.1f} ms -> {large_s * 1e3:.1f} ms, "
                                f"more than {slack:g}x linear growth ({allowed * 1e3:.1f} ms); log-log slope "
                                f"{math.log(large_s / max(small_s, 1e-9)) / math.log(large / small):.2f}")


def codes(diagnostics) -> list[str]:
    return [d.code for d in diagnostics]


def check_errors(text: str, file: str = "spec.yaml"):
    """Run every pure-Python stage on spec text that must fail; returns the error."""
    from graphspec.pipeline import check_text

    with pytest.raises(GraphspecError) as info:
        check_text(text, file=file)
    return info.value


@pytest.fixture(autouse=True)
def _no_plugin_outlives_its_test():
    """The command line enables plugins for the rest of its process (one command per process); a test that runs
    a command in-process must not leave them enabled for the tests after it (the leak fails them only by order)."""
    from graphspec.plugins import active_plugins

    before = active_plugins()
    yield
    leaked = active_plugins()
    if leaked != before:
        from graphspec.plugins import _ACTIVE

        _ACTIVE.set(before)
        pytest.fail(f"the test left plugins enabled: {[p.name for p in leaked]} (run the command in "
                    "contextvars.copy_context().run(...))")
