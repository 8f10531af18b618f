"""The packaging split: `pip install graphspec` is the front end (no TensorFlow, Keras, JAX, torch, numpy);
the `tensorflow` / `gpu` extras add what build/train/evaluate/predict need, and those commands say what to
install when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "jax", "jaxlib", "torch", "numpy")
HINT = "pip install 'graphspec[tensorflow]'"


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop)[0]
    return requirement.lower()


def test_front_end_dependencies_hold_no_tensorflow_keras_jax_torch():
    names = {_name(r) for r in _project()["dependencies"]}
    assert {"pyyaml", "pydantic", "typer", "ruamel.yaml"} <= names
    assert not names & set(HEAVY)
    assert not names & {"tensorflow-cpu", "tensorflow-macos", "tf-keras", "matplotlib"}


def test_extras_add_tensorflow_and_keras_and_the_test_extra_pulls_everything():
    extras = _project()["optional-dependencies"]
    assert {"tensorflow", "keras"} <= {_name(r) for r in extras["tensorflow"]}
    assert any(r.startswith("tensorflow[and-cuda]") for r in extras["gpu"])
    assert "keras" in {_name(r) for r in extras["gpu"]}
    assert "graphspec[tensorflow]" in extras["test"]
    assert {"pytest", "hypothesis", "jsonschema", "matplotlib"} <= {_name(r) for r in extras["test"]}


_WITHOUT_TF = """
import sys
sys.modules["tensorflow"] = None   # as if not installed
sys.modules["keras"] = None
sys.argv = ["graphspec"] + sys.argv[1:]
from graphspec.cli import main
main()
"""


@pytest.mark.parametrize("args", [
    ["build", "specs/digits_cnn.yaml", "-o", "never.keras"],
    ["train", "specs/digits_cnn.yaml", "--epochs", "1"],
    ["evaluate", "no_such_model.keras"],
    ["predict", "no_such_model.keras"],
])
def test_commands_that_need_tensorflow_say_what_to_install(args, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", _WITHOUT_TF, *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "error[tensorflow-not-installed]" in result.stderr
    assert HINT in result.stderr
    assert "Traceback" not in result.stderr
    assert not (ROOT / "never.keras").exists()


def test_missing_keras_alone_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)
    result = CliRunner().invoke(app, ["build", str(ROOT / "specs/digits_cnn.yaml"), "-o", "never.keras"])
    assert result.exit_code == 2
    assert "'keras' is not installed" in result.output
    assert HINT in result.output


def test_check_still_works_without_tensorflow():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", _WITHOUT_TF, "check", "-q", "specs/digits_cnn.yaml"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 of 1 specs ok" in result.stdout


@pytest.mark.slow
def test_front_end_install_in_a_fresh_venv_pulls_no_tensorflow(tmp_path):
    """For real: pip installs the package (no extras) into a fresh virtual environment."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(ROOT)], check=True,
                   timeout=600, cwd=tmp_path)
    listed = subprocess.run([str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"], check=True,
                            capture_output=True, text=True).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.splitlines()}
    assert "graphspec" in installed
    assert not installed & {"tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib", "torch", "numpy"}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    check = subprocess.run([str(bin_dir / "graphspec"), "check", "-q", str(ROOT / "specs/digits_cnn.yaml")],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert check.returncode == 0, check.stderr
    build = subprocess.run([str(bin_dir / "graphspec"), "build", str(ROOT / "specs/digits_cnn.yaml")],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert build.returncode == 2
    assert HINT in build.stderr
