"""--set PATH=VALUE on any value of a spec, `graphspec config`, and spec errors reported before TensorFlow.

Pure Python except where a subprocess proves TensorFlow is *not* imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from graphspec.canonical import spec_hash
from graphspec.cli import app
from graphspec.errors import GraphspecError, SchemaError
from graphspec.overrides import (Override, OverrideError, apply_overrides, check_with_overrides, override_list,
                                 parse_set)
from graphspec.pipeline import check_file

runner = CliRunner()

SPEC = """\
graphspec: 1
name: small
inputs:
  x: {shape: [4]}
nodes:
  hidden: {type: Dense, units: 8, activation: relu}
  drop: {type: Dropout, rate: 0.2}
  out: {type: Dense, units: 3, activation: softmax}
outputs: [out]
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
  loss: sparse_categorical_crossentropy
  metrics: [accuracy]
train:
  data: {npz: data.npz}
  epochs: 2
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(SPEC)
    return path


# -- parsing ---------------------------------------------------------------------------------------

def test_any_section_is_a_path():
    assert parse_set("compile.optimizer.learning_rate=0.01") == (("compile", "optimizer", "learning_rate"), 0.01)
    assert parse_set("nodes.hidden.units=64") == (("nodes", "hidden", "units"), 64)
    assert parse_set("compile.metrics.0=auc") == (("compile", "metrics", 0), "auc")
    assert parse_set("train.validation.split=0.1") == (("train", "validation", "split"), 0.1)


def test_value_is_yaml_flow_and_the_option_text_is_kept():
    override = parse_set("train.validation={split: 0.1, shuffle_before_split: false}")
    assert override.value == {"split": 0.1, "shuffle_before_split": False}
    assert override.text == "--set train.validation={split: 0.1, shuffle_before_split: false}"
    assert isinstance(override, Override) and override.path == ("train", "validation")


@pytest.mark.parametrize("text,needle,hint", [
    ("compile.optimiser={type: SGD}", "the compile section has no field 'optimiser'", "did you mean 'optimizer'?"),
    ("compil.loss=mse", "a spec has no section 'compil'", "did you mean 'compile'?"),
    ("noeds.hidden.units=3", "a spec has no section 'noeds'", "did you mean 'nodes'?"),
    ("nodes..units=3", "is not a dotted path", None),
    ("nodes.hidden.units", "is not KEY=VALUE", None),
    ("nodes.hidden.units=[1, 2", "YAML syntax error", None),
])
def test_bad_set_texts_are_located_at_the_option(text, needle, hint):
    with pytest.raises(OverrideError) as info:
        parse_set(text)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.file == f"--set {text}" and diagnostic.line is None
    assert needle in diagnostic.message
    if hint:
        assert hint in diagnostic.hint


def test_the_issue_case_no_longer_says_train():
    """`--set compile.optimizer.learning_rate=0.01` answered "the train section has no field 'compile'"."""
    override = parse_set("compile.optimizer.learning_rate=0.01")
    assert override.path[0] == "compile"


# -- applying --------------------------------------------------------------------------------------

SECTIONS_IN_ORDER = ("graphspec, name, description, inputs, layers, nodes, outputs, compile, expect, plugins, weights, "
                     "variant, params, variants, blocks, train")


def test_hints_list_the_sections_a_file_may_hold_in_order(tmp_path):
    """The language 1.1 sections moved out of the flat Spec (review finding: 'train' came before them in
    both hints); every section a file may hold, in the documented order."""
    with pytest.raises(OverrideError) as info:
        parse_set("zz=1")
    assert info.value.diagnostics[0].hint == f"sections: {SECTIONS_IN_ORDER}"
    spec = tmp_path / "spec.yaml"
    spec.write_text("graphspec: 1\nname: m\ninputs: {x: {shape: [4]}}\nnodes: {d: {type: Dense, units: 2}}\n"
                    "outputs: [d]\nzz: 1\n", encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        check_file(spec)
    [d] = info.value.diagnostics
    assert d.code == "unknown-key" and d.hint == f"allowed keys here: {SECTIONS_IN_ORDER}"


def test_missing_mappings_are_created_and_null_ones_replaced():
    data = {"train": {"validation": None}}
    changed = apply_overrides(data, [parse_set("train.validation.split=0.1"), parse_set("compile.loss=mse")])
    assert changed == {"train": {"validation": {"split": 0.1}}, "compile": {"loss": "mse"}}
    assert data == {"train": {"validation": None}}  # the original is not touched


def test_an_override_never_invents_a_node_name():
    data = yaml.safe_load(SPEC)
    with pytest.raises(OverrideError) as info:
        apply_overrides(data, [parse_set("nodes.hiden.units=3")])
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "unknown-reference" and "no node 'hiden'" in diagnostic.message
    assert diagnostic.hint == "did you mean 'hidden'?" and diagnostic.file == "--set nodes.hiden.units=3"


def test_a_scalar_on_the_way_is_an_error_with_the_whole_form_as_hint():
    data = {"compile": {"optimizer": "adam"}}
    with pytest.raises(OverrideError) as info:
        apply_overrides(data, [parse_set("compile.optimizer.learning_rate=0.01")])
    (diagnostic,) = info.value.diagnostics
    assert "compile.optimizer is 'adam', not a mapping" in diagnostic.message
    assert "--set 'compile.optimizer={type: ..., learning_rate: 0.01}'" in diagnostic.hint


def test_list_indices_must_exist():
    data = {"compile": {"metrics": ["accuracy"]}}
    assert apply_overrides(data, [parse_set("compile.metrics.0=auc")]) == {"compile": {"metrics": ["auc"]}}
    with pytest.raises(OverrideError, match="is a list of 1"):
        apply_overrides(data, [parse_set("compile.metrics.3=auc")])


# -- checked like the file, located at the option ---------------------------------------------------

def test_overrides_reach_compile_nodes_and_train(spec):
    checked = check_with_overrides(spec, override_list(
        ["compile.optimizer.learning_rate=0.01", "nodes.hidden.units=16", "train.validation.split=0.25"],
        epochs=5))
    assert checked.spec.compile.optimizer.args["learning_rate"] == 0.01
    assert checked.graph.nodes["hidden"].layer_args["units"] == 16
    assert checked.inferred.nodes["hidden"].params == 4 * 16 + 16
    assert checked.spec.train.validation.split == 0.25 and checked.spec.train.epochs == 5
    assert spec_hash(checked.graph) != spec_hash(check_file(spec).graph)


@pytest.mark.parametrize("text,code,needle", [
    ("compile.optimizer.learning_rat=0.01", "unknown-argument", "did you mean 'learning_rate'?"),
    ("nodes.hidden.units=0", "bad-argument", "positive integer"),
    ("train.batch_size=-1", "bad-value", "greater than or equal to 1"),
])
def test_errors_under_an_override_name_it(spec, text, code, needle):
    with pytest.raises(GraphspecError) as info:
        check_with_overrides(spec, [parse_set(text)])
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.file == f"--set {text}" and diagnostic.line is None
    assert code is None or diagnostic.code == code
    assert needle in diagnostic.message + (diagnostic.hint or "")


def test_errors_elsewhere_keep_their_line(spec):
    spec.write_text(SPEC.replace("rate: 0.2", "rate: 0.2, nosuch: 1"))
    with pytest.raises(SchemaError) as info:
        check_with_overrides(spec, [parse_set("nodes.hidden.units=16")])
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.file == str(spec) and diagnostic.line == 7


def test_named_options_are_named_in_errors(spec):
    with pytest.raises(SchemaError) as info:
        check_with_overrides(spec, override_list(epochs=0))
    assert info.value.diagnostics[0].file == "--epochs 0"


# -- the command line ------------------------------------------------------------------------------

def test_check_takes_set(spec):
    result = runner.invoke(app, ["check", str(spec), "--set", "nodes.hidden.units=16", "--format", "json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert report["params"] == (4 * 16 + 16) + (16 * 3 + 3)
    result = runner.invoke(app, ["check", str(spec), "--set", "nodes.hidden.units=0"])
    assert result.exit_code == 2
    assert "--set nodes.hidden.units=0: error[bad-argument]" in result.stderr


def test_config_prints_the_effective_spec_which_is_itself_a_spec_with_that_hash(spec, tmp_path):
    result = runner.invoke(app, ["config", str(spec), "--set", "compile.optimizer.learning_rate=0.01",
                                 "--set", "train.validation.split=0.2"])
    assert result.exit_code == 0, result.output
    first, _, body = result.stdout.partition("\n")
    digest = first.rsplit(" ", 1)[1]
    assert digest.startswith("sha256:")
    data = yaml.safe_load(body)
    assert data["compile"]["optimizer"]["learning_rate"] == 0.01
    assert data["train"]["validation"]["split"] == 0.2 and data["train"]["batch_size"] == 32  # defaults filled in
    again = tmp_path / "effective.yaml"
    again.write_text(result.stdout)
    assert spec_hash(check_file(again).graph) == digest
    as_json = json.loads(runner.invoke(app, ["config", str(spec), "--format", "json", "--set",
                                             "compile.optimizer.learning_rate=0.01", "--set",
                                             "train.validation.split=0.2"]).stdout)
    assert as_json["hash"] == digest and as_json["spec"]["nodes"]["hidden"]["units"] == 8


def test_config_reports_a_bad_override_with_exit_2(spec):
    result = runner.invoke(app, ["config", str(spec), "--set", "nodes.hiden.units=3"])
    assert result.exit_code == 2
    assert "--set nodes.hiden.units=3: error[unknown-reference]: the spec has no node 'hiden'" in result.stderr
    assert "did you mean 'hidden'?" in result.stderr


# -- spec errors before TensorFlow ------------------------------------------------------------------

PROBE = (
    "import atexit, sys\n"
    "def report():\n"
    "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})\n"
    "    sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
    "atexit.register(report)\n"
    "sys.argv = ['graphspec'] + sys.argv[1:]\n"
    "from graphspec.cli import main\n"
    "main()\n"
)


def _run_run_dir(tmp_path: Path) -> Path:
    """A run directory whose spec.yaml has a typo (as if edited after training)."""
    run = tmp_path / "runs" / "small" / "r"
    run.mkdir(parents=True)
    (run / "spec.yaml").write_text(SPEC.replace("type: Dropout", "type: Dropuot"))
    (run / "run.json").write_text(json.dumps({"status": "completed", "spec": "small", "overrides": []}))
    (run / "model.keras").write_bytes(b"not read")
    return run


def _keras_file(tmp_path: Path) -> Path:
    """A .keras file whose metadata carries a spec with a typo (what a graphspec artifact holds)."""
    import zipfile

    path = tmp_path / "typo.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"graphspec": {
            "canonical_spec": yaml.safe_load(SPEC.replace("type: Dropout", "type: Dropuot"))}}))
    return path


@pytest.mark.parametrize("command", ["train", "build", "config", "evaluate", "predict", "train-resume",
                                     "predict-keras"])
def test_spec_errors_are_reported_without_importing_tensorflow(command, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text(SPEC.replace("type: Dropout", "type: Dropuot"))
    run = _run_run_dir(tmp_path)
    args = {"predict-keras": ["predict", str(_keras_file(tmp_path)), "-o", str(tmp_path / "p.npz")],
            "train": ["train", str(typo), "--runs", str(tmp_path / "out")],
            "build": ["build", str(typo), "-o", str(tmp_path / "m.keras")],
            "config": ["config", str(typo)],
            "evaluate": ["evaluate", str(run)],
            "predict": ["predict", str(run), "-o", str(tmp_path / "p.npz")],
            "train-resume": ["train", "--resume", str(run)]}[command]
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error[unknown-layer-type]: unknown layer type 'Dropuot'" in result.stderr
    assert "did you mean 'Dropout'?" in result.stderr
    assert "HEAVY=\n" in result.stderr, result.stderr[-2000:]  # neither TensorFlow nor Keras was imported
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.keras").exists()


# -- language 1.1: model parameters ------------------------------------------------------------------

PARAMS_SPEC = """\
graphspec: 1
name: p
params:
  width: {type: int, default: 8, min: 1}
inputs:
  x: {shape: [4]}
nodes:
  hidden: {type: Dense, units: "${width}", activation: relu}
  out: {type: Dense, units: 1}
outputs: [out]
"""


def test_set_params_overrides_a_declared_parameter_before_expansion(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(PARAMS_SPEC)
    checked = check_with_overrides(spec, [parse_set("params.width=96")])
    assert checked.inferred.nodes["hidden"].params == 4 * 96 + 96
    with pytest.raises(OverrideError) as info:
        check_with_overrides(spec, [parse_set("params.widht=96")])
    assert info.value.diagnostics[0].hint == "did you mean 'width'?"
    with pytest.raises(GraphspecError) as info:
        check_with_overrides(spec, [parse_set("params.width=0")])  # the parameter's own bounds check it
    assert info.value.diagnostics[0].file == "--set params.width=0"
