"""The documented Python API (README's snippet) works on every call, whatever was imported before.

Regression: ``graphspec.load`` was shadowed by the submodule ``graphspec/load.py`` after its first
use, so the README's snippet raised ``TypeError: 'module' object is not callable`` on the second spec.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import graphspec
from testkit import REPO

STAGE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(graphspec.__path__, "graphspec.")
    if not m.name.startswith(("graphspec.train", "graphspec.catalogue.generate"))
    and m.name not in {"graphspec.emit", "graphspec.__main__"}
)
"""Every module of the pure-Python front end (importing them must not shadow the API functions)."""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_readme_snippet_runs_twice_in_one_process():
    done = _run("""
        import graphspec
        for _ in range(2):
            checked = graphspec.load("specs/seed000_multimodal.yaml")
            assert checked.graph is not None
        checked = graphspec.load("specs/seed001_multi_output_bbox.yaml")
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_api_functions_survive_importing_every_stage_module():
    import importlib

    for name in STAGE_MODULES:
        importlib.import_module(name)
    for name in ("load", "loads", "build"):
        assert callable(getattr(graphspec, name)), f"graphspec.{name} is shadowed by a submodule"
    assert graphspec.load(REPO / "specs" / "seed000_multimodal.yaml").graph is not None
    assert graphspec.loads((REPO / "specs" / "seed000_multimodal.yaml").read_text()).graph is not None


def test_no_submodule_is_named_like_an_api_function():
    names = {m.name.rsplit(".", 1)[-1] for m in pkgutil.walk_packages(graphspec.__path__, "graphspec.")}
    assert not names & set(graphspec.__all__), "a submodule would shadow graphspec.<name> once imported"
