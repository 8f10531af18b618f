"""TensorFlow's start-up chatter stays out of graphspec's output (graphspec/backend.py).

Regression: with ``TF_CPP_MIN_LOG_LEVEL=2`` (what .ci/run exports) and in the Python API, the
absl pre-initialisation lines and ``failed call to cuInit ... UNKNOWN ERROR (303)`` came back.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit import REPO, run_cli

STARTUP_NOISE = ("absl::InitializeLog", "oneDNN", "cuda", "cuInit", "cpu_feature_guard", "rebuild TensorFlow")


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(word in line for word in STARTUP_NOISE)]


@pytest.mark.parametrize("level", [None, "2"])  # unset (the API default) and what .ci/run exports
def test_python_api_build_is_quiet(level):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    done = subprocess.run(
        [sys.executable, "-c", "import graphspec; graphspec.build('specs/seed000_multimodal.yaml'); print('built')"],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "built"
    assert _noise(done.stderr) == []


def test_cli_build_is_quiet_with_the_level_ci_exports(tmp_path):
    done = run_cli("build", str(REPO / "specs" / "seed000_multimodal.yaml"), "-o", str(tmp_path / "m.keras"),
                   env={"TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=180)
    assert done.returncode == 0, done.stderr
    assert _noise(done.stderr) == []


def test_level_zero_lets_the_startup_logs_through():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")
    done = subprocess.run([sys.executable, "-c", "from graphspec.backend import import_tensorflow; import_tensorflow()"],
                          cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    assert _noise(done.stderr), "TF_CPP_MIN_LOG_LEVEL=0 is the documented way to see TensorFlow's start-up logs"


def test_tensorflow_runs_with_pythons_own_garbage_collection():
    """The executable collects garbage rarely for its short front-end commands; a command that imports
    TensorFlow gets Python's settings back before it does."""
    probe = ("import gc\n"
             "from graphspec.backend import collect_garbage_as_a_short_process, import_tensorflow\n"
             "python_default = gc.get_threshold()\n"
             "collect_garbage_as_a_short_process()\n"
             "raised = gc.get_threshold()\n"
             "import_tensorflow()\n"
             "print(raised[0] > python_default[0], gc.get_threshold() == python_default)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
