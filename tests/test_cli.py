"""The command line: check (table, folders, JSON), build (a plain .keras), import hygiene, the spec hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.canonical import spec_hash
from graphspec.cli import app
from graphspec.pipeline import check_text
from testkit import MINIMAL, run_cli

runner = CliRunner()

SPEC = """\
# A small multi-input, multi-output model with a shared layer.
graphspec: 1
name: small
description: two inputs, a shared projection, two heads

inputs:
  a: {shape: [8]}
  b: {shape: [8]}

layers:
  proj: {type: Dense, units: 4, activation: relu}

nodes:
  pa: {shared: proj, input: a}
  pb: {shared: proj, input: b}
  merged: {type: Concatenate, input: [pa, pb]}
  score: {type: Dense, units: 1, activation: sigmoid}
  aux: {type: Dense, units: 3, activation: softmax, input: merged}

outputs: {score: score, aux: aux}

compile:
  optimizer: {type: Adam, learning_rate: 1e-3}
  loss: {score: binary_crossentropy, aux: categorical_crossentropy}
  metrics: {score: [accuracy]}

expect:
  params: 72   # proj 8*4+4 = 36, score 8*1+1 = 9, aux 8*3+3 = 27
"""

BROKEN = MINIMAL.replace("units: 4", "unit: 4")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------------

def test_check_ok_prints_the_table(tmp_path):
    spec = write(tmp_path, "small.yaml", SPEC)
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    expected_hash = spec_hash(check_text(SPEC).graph)
    assert lines[0] == f"{spec}: ok  (small, 5 nodes, {expected_hash[:19]})"
    assert lines[1].split() == ["node", "layer", "output", "shape", "params"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    rows = {line.split()[0]: line for line in lines[3:-1]}
    assert list(rows) == ["a", "b", "pa", "pb", "merged", "score", "aux"]
    assert "Input" in rows["a"] and "(None, 8)" in rows["a"]
    assert "shared 'proj'" in rows["pa"] and rows["pa"].rstrip().endswith("36")
    assert rows["pb"].rstrip().endswith("(shared)")
    assert "(None, 8)" in rows["merged"] and "(None, 3)" in rows["aux"]
    assert lines[-1].strip() == "total params: 72"
    assert result.stderr == ""


def test_check_reports_warnings_but_passes(tmp_path):
    spec = write(tmp_path, "w.yaml", MINIMAL.replace("nodes:\n", "nodes:\n  unused: {type: Dense, units: 2}\n")
                 .replace("  d1: {type: Dense, units: 4}", "  d1: {type: Dense, units: 4, input: x}"))
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 0
    assert f"{spec}:6:3: warning[unused-node]" in result.stderr


def test_check_error_is_located_with_excerpt_and_hint(tmp_path):
    spec = write(tmp_path, "bad.yaml", BROKEN)
    result = runner.invoke(app, ["check", str(spec)])
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr.splitlines()
    assert f"{spec}:6:21: error[unknown-argument]: Dense has no argument 'unit'" in err
    assert "  hint: did you mean 'units'?" in err
    assert "    6 |   d1: {type: Dense, unit: 4}" in err
    assert err[-1] == "1 error (schema stage)"  # the misspelt 'units' is not also reported missing


def test_check_of_a_folder(tmp_path):
    write(tmp_path, "specs/a.yaml", MINIMAL)
    write(tmp_path, "specs/sub/b.yml", MINIMAL.replace("name: m", "name: m2"))
    write(tmp_path, "specs/notes.txt", "not a spec")
    write(tmp_path, "specs/sub/model.keras", "binary")
    result = runner.invoke(app, ["check", str(tmp_path / "specs")])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": ok  (") == 2
    assert result.stdout.splitlines()[-1] == "2 of 2 specs ok"

    write(tmp_path, "specs/sub/c.yaml", BROKEN)
    result = runner.invoke(app, ["check", "--quiet", str(tmp_path / "specs")])
    assert result.exit_code == 2
    assert ": ok  (" not in result.stdout  # --quiet prints only problems and the summary
    assert result.stdout.splitlines()[-1] == "2 of 3 specs ok"
    assert f"{tmp_path / 'specs/sub/c.yaml'}:6:" in result.stderr


def test_check_of_several_files_continues_after_a_failure(tmp_path):
    bad = write(tmp_path, "bad.yaml", BROKEN)
    good = write(tmp_path, "good.yaml", MINIMAL)
    missing = tmp_path / "missing.yaml"
    result = runner.invoke(app, ["check", str(bad), str(missing), str(good)])
    assert result.exit_code == 2
    assert f"{good}: ok" in result.stdout
    assert "error[file-not-found]" in result.stderr
    assert result.stdout.splitlines()[-1] == "1 of 3 specs ok"


def test_check_json(tmp_path):
    good = write(tmp_path, "good.yaml", SPEC)
    bad = write(tmp_path, "bad.yaml", BROKEN)
    result = runner.invoke(app, ["check", "--format", "json", str(good), str(bad)])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [r["file"] for r in report] == [str(good), str(bad)]
    ok, failed = report
    assert ok["ok"] is True and ok["params"] == 72 and ok["diagnostics"] == []
    assert ok["hash"] == spec_hash(check_text(SPEC).graph) and ok["hash"].startswith("sha256:")
    assert failed["ok"] is False and failed["stage"] == "schema"
    by_code = {d["code"]: d for d in failed["diagnostics"]}
    assert by_code["unknown-argument"] == {
        "severity": "error", "code": "unknown-argument", "message": "Dense has no argument 'unit'",
        "path": "nodes.d1.unit", "line": 6, "col": 21, "hint": "did you mean 'units'?"}
    assert "missing-argument" not in by_code  # 'unit' is reported once, with 'units' as its hint


def test_check_rejects_an_unknown_format(tmp_path):
    result = runner.invoke(app, ["check", "--format", "xml", str(write(tmp_path, "a.yaml", MINIMAL))])
    assert result.exit_code == 2


def test_check_without_specs(tmp_path):
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 2 and "no spec files found" in result.stderr


# ---------------------------------------------------------------------------------------------
# TensorFlow and Keras stay out of check and --help
# ---------------------------------------------------------------------------------------------

PROBE = (
    "import atexit, sys\n"
    "def report():\n"
    "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'jax', 'torch', 'tf_keras'})\n"
    "    sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
    "atexit.register(report)\n"
    "sys.argv = ['graphspec'] + sys.argv[1:]\n"
    "from graphspec.cli import main\n"
    "main()\n"
)


@pytest.mark.parametrize("args", [["--help"], ["check", "{good}"], ["check", "--format", "json", "{good}", "{bad}"],
                                  ["check", "--help"], []],
                         ids=["help", "check", "check-json-with-error", "check-help", "no-args"])
def test_help_and_check_do_not_import_tensorflow_or_keras(args, tmp_path):
    good = write(tmp_path, "good.yaml", SPEC)
    bad = write(tmp_path, "bad.yaml", BROKEN)
    args = [a.format(good=good, bad=bad) for a in args]
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    assert "HEAVY=\n" in result.stderr, result.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# The spec hash
# ---------------------------------------------------------------------------------------------

SAME_MODEL = """\
graphspec: 1   # the format
name: small
description: two inputs, a shared projection, two heads
layers: {proj: {activation: relu, units: 4, type: Dense}}
inputs: {b: {shape: [8], dtype: float32}, a: {shape: [8], sparse: false}}
nodes:
  pa:     {input: a, shared: proj}
  pb:     {shared: proj, input: b}
  merged: {type: Concatenate, input: [pa, pb]}
  score:
    type: Dense
    activation: sigmoid
    units: 1
    input: merged   # explicit, the same as the default
  aux: {input: merged, type: Dense, units: 3, activation: softmax}
outputs:
  aux: aux
  score: score
expect: {params: 72}
compile:
  metrics: {score: [accuracy]}
  loss: {aux: categorical_crossentropy, score: binary_crossentropy}
  optimizer:
    learning_rate: 0.001
    type: Adam
"""


def test_hash_ignores_formatting_comments_key_order_and_number_spelling():
    base = spec_hash(check_text(SPEC).graph)
    assert spec_hash(check_text(SAME_MODEL).graph) == base
    assert spec_hash(check_text(SPEC.replace("1e-3", "1.0e-3")).graph) == base
    assert spec_hash(check_text(SPEC.replace("1e-3", "0.0010")).graph) == base


@pytest.mark.parametrize("change", [
    ("units: 3", "units: 4"),
    ("learning_rate: 1e-3", "learning_rate: 1e-4"),
    ("name: small", "name: small2"),
    ("input: merged}", "input: pa}"),
    ("outputs: {score: score, aux: aux}", "outputs: {score: score, aux2: aux}"),
])
def test_hash_changes_with_the_model(change):
    old, new = change
    changed = SPEC.replace("  params: 72", "  params: null").replace(old, new).replace("aux: categorical", "aux2: categorical" if "aux2" in new else "aux: categorical")
    assert changed != SPEC
    assert spec_hash(check_text(changed).graph) != spec_hash(check_text(SPEC).graph)


def test_cli_reports_the_same_hash_for_both_spellings(tmp_path):
    one = write(tmp_path, "one.yaml", SPEC)
    two = write(tmp_path, "two.yaml", SAME_MODEL)
    report = json.loads(runner.invoke(app, ["check", "--format", "json", str(one), str(two)]).stdout)
    assert report[0]["hash"] == report[1]["hash"]


# ---------------------------------------------------------------------------------------------
# build: a plain .keras that Keras loads without graphspec
# ---------------------------------------------------------------------------------------------

LOAD_WITHOUT_GRAPHSPEC = """\
import json, sys, zipfile
sys.modules['graphspec'] = None          # any import of graphspec now fails
import numpy as np, keras
path = sys.argv[1]
model = keras.saving.load_model(path)    # safe_mode is on by default
out = model.predict({'a': np.ones((2, 8)), 'b': np.zeros((2, 8))}, verbose=0)
meta = json.loads(zipfile.ZipFile(path).read('metadata.json'))
print(json.dumps({'name': model.name, 'params': model.count_params(), 'outputs': sorted(out),
                  'shapes': {k: list(v.shape) for k, v in out.items()}, 'optimizer': type(model.optimizer).__name__,
                  'hash': meta['graphspec']['spec_hash'], 'no_graphspec': 'graphspec' not in sys.modules or
                  sys.modules['graphspec'] is None}))
"""


@pytest.mark.slow
def test_build_writes_a_plain_keras_file_with_the_spec_hash(tmp_path):
    spec = write(tmp_path, "small.yaml", SPEC)
    target = tmp_path / "out" / "small.keras"
    result = runner.invoke(app, ["build", str(spec), "-o", str(target), "--no-summary"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"wrote {target}")
    assert sorted(p.name for p in target.parent.iterdir()) == ["small.keras"]  # no temporary files left

    with zipfile.ZipFile(target) as archive:
        metadata = json.loads(archive.read("metadata.json"))
        config = archive.read("config.json").decode()
    expected = spec_hash(check_text(SPEC).graph)
    assert metadata["graphspec"]["spec_hash"] == expected
    assert metadata["graphspec"]["canonical_spec"]["name"] == "small"
    assert "graphspec" not in config  # the model config itself is pure Keras

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    loaded = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_GRAPHSPEC, str(target)], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    facts = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert facts == {"name": "small", "params": 72, "outputs": ["aux", "score"],
                     "shapes": {"aux": [2, 3], "score": [2, 1]}, "optimizer": "Adam", "hash": expected,
                     "no_graphspec": True}


@pytest.mark.slow
def test_build_failure_writes_nothing(tmp_path):
    spec = write(tmp_path, "small.yaml", SPEC.replace("params: 72", "params: 71"))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["build", str(spec), "-o", str(tmp_path / "small.keras"), "--no-summary"])
    assert result.exit_code == 2
    assert f"{spec}:28:11:" in result.stderr and "error[expect-failed]" in result.stderr
    assert "set params: 72" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
