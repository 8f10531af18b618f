"""Plugins: custom layers enabled by the person running graphspec (``--plugin``, ``plugins=[...]``),
never by the spec. The error cases a spec can cause are golden fixtures (``tests/fixtures/invalid/plugin_*``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import graphspec
from graphspec.canonical import canonical_json, spec_hash
from graphspec.errors import GraphspecError
from graphspec.pipeline import check_text
from graphspec.plugins import BUILTIN_PROVIDERS, PluginError, _source_digest, load_plugin, load_plugins, using
from testkit import check_errors, codes, run_cli, spec_text

APPLICATIONS = "graphspec.plugins.applications"

CONVNEXT = spec_text("""
    graphspec: 1
    name: convnext_block
    inputs:
      x: {shape: [7, 7, 16]}
    nodes:
      dw: {type: DepthwiseConv2D, kernel_size: 7, padding: same}
      ln: {type: LayerNormalization, epsilon: 1.0e-6}
      pw1: {type: Dense, units: 64, activation: gelu}
      pw2: {type: Dense, units: 16}
      scale: {type: LayerScale, init_values: 1.0e-6, projection_dim: 16}
      res: {type: Add, input: [x, scale]}
      pool: {type: GlobalAveragePooling2D}
      up: {type: Dense, units: 16}
      mixed: {type: CustomScaleLayer, scale: 0.17, input: [pool, up]}
    outputs: [mixed]
    expect:
      params: 3248
    """)

TEAM_PLUGIN = '''
"""A team's own layers, as a graphspec plugin."""
import keras

from graphspec.infer.tensor import RuleResult, TensorInfo

__version__ = "1.2.0"


@keras.saving.register_keras_serializable(package="{name}")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {{**super().get_config(), "factor": self.factor}}


def scale_rule(call):
    x = call.input
    return RuleResult(TensorInfo(x.shape, call.dtype()), 0)


GRAPHSPEC_PLUGIN = {{"layers": [Scale], "rules": {{"Scale": scale_rule}}}}
'''

TEAM_SPEC = spec_text("""
    graphspec: 1
    name: team_model
    plugins: [{name}]
    inputs:
      x: {{shape: [4]}}
    nodes:
      d: {{type: Dense, units: 3}}
      s: {{type: Scale, factor: 3.0}}
    outputs: [s]
    """)


@pytest.fixture
def team_plugin(tmp_path, monkeypatch, request):
    """A plugin module written to a temporary folder on sys.path (a fresh name per test: Keras keeps
    registrations for the whole process)."""
    name = f"team_layers_{request.node.name.split('[')[0][-24:]}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(TEAM_PLUGIN.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, tmp_path


# -- without the plugin: check names it, and imports nothing ---------------------------------------

def test_a_builtin_plugin_layer_without_the_plugin_names_the_plugin():
    error = check_errors(CONVNEXT)
    assert codes(error.diagnostics) == ["plugin-not-enabled", "plugin-not-enabled"]
    first = error.diagnostics[0]
    assert first.path == ("nodes", "scale", "type")
    assert f"comes from the plugin '{APPLICATIONS}', which is not enabled" in first.message
    assert f"--plugin {APPLICATIONS}" in first.hint


def test_a_declared_plugin_that_is_not_enabled_is_named(team_plugin):
    name, _ = team_plugin
    error = check_errors(TEAM_SPEC.format(name=name))
    assert codes(error.diagnostics) == ["plugin-not-enabled"]
    assert f"the spec needs the plugin '{name}', not enabled" in error.diagnostics[0].message
    assert f"--plugin {name}" in error.diagnostics[0].hint
    assert name not in sys.modules  # the spec's 'plugins:' is data: it never imports anything


def _check_in_a_fresh_process(tmp_path, *options: str) -> tuple[str, str]:
    """``check [OPTIONS] convnext.yaml`` through the CLI in a fresh interpreter: the line "EXIT_CODE [heavy
    modules imported]" and the command's output."""
    (tmp_path / "convnext.yaml").write_text(CONVNEXT)
    args = [*options, str(tmp_path / "convnext.yaml")]
    probe = ("import sys\nfrom graphspec.cli import app\nfrom typer.testing import CliRunner\n"
             f"result = CliRunner().invoke(app, ['check', *{args!r}])\n"
             "print(result.exit_code, sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow'}))\n"
             "print(result.output)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    first, _, rest = done.stdout.partition("\n")
    return first, rest + done.stderr


def test_check_without_plugins_imports_neither_keras_nor_the_plugin(tmp_path):
    first, rest = _check_in_a_fresh_process(tmp_path)
    assert first == "2 []", rest
    assert "error[plugin-not-enabled]" in rest


def test_check_with_the_builtin_plugin_imports_no_keras(tmp_path):
    """docs/plugins.md: the built-in plugin imports Keras only when a model is built (the CLI imported
    TensorFlow for any --plugin, ~5 s for check)."""
    first, rest = _check_in_a_fresh_process(tmp_path, "--plugin", APPLICATIONS)
    assert first == "0 []", rest


def test_the_builtin_provider_table_lists_the_builtin_plugins_layers():
    plugin = load_plugin(APPLICATIONS)
    assert {name: APPLICATIONS for name in plugin.classes} == BUILTIN_PROVIDERS


# -- enabled: catalogued, checked, built, recorded -------------------------------------------------

def test_plugin_layers_are_catalogued_from_their_signatures():
    plugin = load_plugin(APPLICATIONS)
    entry = plugin.entries["LayerScale"]
    assert entry["args"]["init_values"] == {"required": True}
    assert entry["args"]["projection_dim"] == {"required": True}
    assert "trainable" in entry["args"] and "dtype" in entry["args"]  # the base layer's, through **kwargs
    assert entry["call_args"] == ["x"] and entry["plugin"] == APPLICATIONS
    with using([plugin]):
        error = check_errors(CONVNEXT.replace("projection_dim: 16", "projection_dims: 16"))
    assert codes(error.diagnostics) == ["unknown-argument"]
    assert "did you mean 'projection_dim'?" in error.diagnostics[0].hint


def test_plugin_rules_infer_shapes_and_params_and_refuse_mismatches():
    with using(load_plugins([APPLICATIONS])):
        checked = check_text(CONVNEXT)
        assert str(checked.inferred.nodes["scale"].outputs) == "(None, 7, 7, 16)"
        assert checked.inferred.nodes["scale"].params == 16
        assert checked.inferred.total_params == 3248
        error = check_errors(CONVNEXT.replace("projection_dim: 16", "projection_dim: 8"))
    assert codes(error.diagnostics) == ["shape-mismatch"]
    assert error.diagnostics[0].path == ("nodes", "scale", "projection_dim")


def test_enabled_only_inside_the_block_or_for_the_api_call():
    with using(load_plugins([APPLICATIONS])):
        check_text(CONVNEXT)
    check_errors(CONVNEXT)  # the block is over: not enabled any more
    checked = graphspec.loads(CONVNEXT, plugins=[APPLICATIONS])
    assert [p.name for p in checked.graph.plugins] == [APPLICATIONS]


def test_the_spec_hash_records_the_plugins_the_spec_uses():
    plain = spec_text("""
        graphspec: 1
        name: m
        inputs: {x: {shape: [3]}}
        nodes: {d: {type: Dense, units: 2}}
        outputs: [d]
        """)
    before = spec_hash(check_text(plain).graph)
    with using(load_plugins([APPLICATIONS])):
        assert spec_hash(check_text(plain).graph) == before  # a plugin the spec does not use changes nothing
        checked = check_text(CONVNEXT)
    data = json.loads(canonical_json(checked.graph))
    plugin = load_plugin(APPLICATIONS)
    assert data["plugin_versions"] == [{"name": APPLICATIONS, "version": graphspec.__version__,
                                        "sha256": plugin.sha256}]
    assert "plugins" not in data  # no 'plugins:' written in the spec


def test_a_changed_plugin_source_changes_its_digest(team_plugin):
    name, folder = team_plugin
    plugin = load_plugin(name)
    module = sys.modules[name]
    assert plugin.sha256 == _source_digest(module) and plugin.version == "1.2.0"
    (folder / f"{name}.py").write_text(TEAM_PLUGIN.format(name=name).replace("* self.factor", "* self.factor * 1"))
    assert _source_digest(module) != plugin.sha256


@pytest.mark.parametrize("source, message", [
    ("x = 1\n", "has no GRAPHSPEC_PLUGIN"),
    ("import keras\nclass Dense(keras.layers.Layer):\n    pass\nGRAPHSPEC_PLUGIN = {'layers': [Dense]}\n",
     "has the name of a Keras layer"),
    ("import keras\nclass Loose(keras.layers.Layer):\n    pass\nGRAPHSPEC_PLUGIN = {'layers': [Loose]}\n",
     "is not registered with Keras' serialization"),
    ("GRAPHSPEC_PLUGIN = {'layers': [int]}\n", "is not a Keras layer class"),
    ("import keras\nGRAPHSPEC_PLUGIN = {'name': 'other', 'layers': [keras.layers.Layer]}\n", "names it 'other'"),
    ("GRAPHSPEC_PLUGIN = {'layers': [], 'rules': {}}\n", "has no GRAPHSPEC_PLUGIN"),
])
def test_a_malformed_plugin_is_refused_when_enabled(tmp_path, monkeypatch, source, message):
    name = f"bad_plugin_{abs(hash(source)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as info:
        load_plugin(name)
    assert message in info.value.diagnostics[0].message
    with pytest.raises(PluginError, match="cannot import"):
        load_plugin("no_such_plugin_module_anywhere")


keras = pytest.importorskip("keras")


@pytest.mark.slow  # a fresh Python importing Keras (about 9 s)
def test_the_built_model_is_plain_keras_and_loads_without_graphspec(tmp_path):
    from graphspec.emit import emit, read_artifact_metadata, save_artifact

    checked = graphspec.loads(CONVNEXT, plugins=[APPLICATIONS])
    model = emit(checked)  # emit enables the plugins the spec was checked with
    assert model.count_params() == 3248
    target = save_artifact(checked, model, tmp_path / "convnext.keras")
    metadata = read_artifact_metadata(target)
    assert metadata["plugins"] == [load_plugin(APPLICATIONS).record()]
    assert metadata["spec_hash"] == spec_hash(checked.graph)
    # A Python without graphspec: Keras' own classes load by their module, in safe mode.
    probe = ("import sys, numpy as np, keras\n"
             f"m = keras.saving.load_model({str(target)!r})\n"
             "x = np.ones((2, 7, 7, 16), 'float32')\n"
             "print(type(m.get_layer('scale')).__name__, m(x).shape, 'graphspec' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "LayerScale (2, 16) False", done.stderr[-2000:]
    x = np.random.default_rng(0).standard_normal((2, 7, 7, 16)).astype("float32")
    reloaded = keras.saving.load_model(target)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(model(x)))


def test_builtin_rules_agree_with_keras():
    plugin = load_plugin(APPLICATIONS)
    from graphspec.infer import TensorInfo, infer_layer

    cases = [("LayerScale", {"init_values": 0.1, "projection_dim": 5}, [(4, 5)]),
             ("LayerScale", {"init_values": 0.1, "projection_dim": 3, "dtype": "float16"}, [(2, 2, 3)]),
             ("LayerScale", {"init_values": 0.1, "projection_dim": 3, "trainable": False}, [(3,)]),
             ("CustomScaleLayer", {"scale": 0.5}, [(4, 6), (4, 6)]),
             ("CustomScaleLayer", {"scale": 0.5, "dtype": "float64"}, [(3,), (3,)])]
    with using([plugin]):
        for layer_type, args, shapes in cases:
            infos = [TensorInfo((None, *s)) for s in shapes]
            result = infer_layer(layer_type, args, infos[0] if len(infos) == 1 else infos)
            layer = plugin.classes[layer_type](**args)
            tensors = [keras.Input(s) for s in shapes]
            out = layer(tensors[0] if len(tensors) == 1 else tensors)
            assert (result.outputs.shape, result.outputs.dtype) == (tuple(out.shape), out.dtype), (layer_type, args)
            trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            assert (result.params, result.params + result.non_trainable_params) == (trainable, layer.count_params())


@pytest.mark.slow  # five fresh Pythons importing Keras (about 28 s)
def test_a_third_party_plugin_from_the_command_line(team_plugin, tmp_path):
    name, folder = team_plugin
    spec = folder / "team.yaml"
    spec.write_text(TEAM_SPEC.format(name=name))
    env = {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    done = run_cli("check", str(spec), env=env)
    assert done.returncode == 2 and "error[plugin-not-enabled]" in done.stderr
    done = run_cli("check", "--plugin", name, str(spec), env=env)
    assert done.returncode == 0, done.stderr
    assert "Scale" in done.stdout and "(None, 3)" in done.stdout
    target = tmp_path / "team.keras"
    done = run_cli("build", "--plugin", name, str(spec), "-o", str(target), "--no-summary", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    record = read_plugins(target)
    assert record == [{"name": name, "version": "1.2.0", "sha256": record[0]["sha256"]}]
    # Plain Keras loads it once the plugin's classes are registered (`import the plugin` first), and not
    # before: both in one process (one TensorFlow start), the refusal first, while nothing is registered.
    load = (f"import keras, numpy as np\n"
            f"try:\n    keras.saving.load_model({str(target)!r})\n    print('loaded without the plugin')\n"
            f"except Exception as error:\n    print('refused', 'Scale' in str(error))\n"
            f"import {name}\nm = keras.saving.load_model({str(target)!r})\n"
            # the model scales in float32; compare with the float32 product, not Python's float64 one
            "print(bool(np.float32(m(np.ones((1, 4), 'float32'))[0, 0]) == np.float32(3) * "
            "np.float32(m.get_layer('d')(np.ones((1, 4), 'float32'))[0, 0])))")
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env))
    assert loaded.stdout.strip().splitlines()[-2:] == ["refused True", "True"], loaded.stdout + loaded.stderr[-2000:]
    done = run_cli("check", "--plugin", "no_such_plugin_module_anywhere", str(spec), env=env)
    assert done.returncode == 2 and "error[bad-plugin]" in done.stderr


def read_plugins(path: Path) -> list:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json"))["graphspec"]["plugins"]


def test_plugin_layers_in_shared_layers_and_sequential_blocks():
    from graphspec.emit import emit

    text = spec_text("""
        graphspec: 1
        name: nested_plugin_layers
        inputs: {a: {shape: [8]}, b: {shape: [8]}}
        layers:
          scale: {type: LayerScale, init_values: 0.5, projection_dim: 8}
        nodes:
          sa: {shared: scale, input: a}
          sb: {shared: scale, input: b}
          block: {sequential: [{type: Dense, units: 8}, {type: LayerScale, init_values: 0.1, projection_dim: 8}],
                  input: sa}
          out: {type: Add, input: [block, sb]}
        outputs: [out]
        """)
    checked = graphspec.loads(text, plugins=[APPLICATIONS])
    assert [p.name for p in checked.graph.plugins] == [APPLICATIONS]
    assert checked.inferred.total_params == 8 + 72 + 8
    model = emit(checked)
    assert model.count_params() == 88
    assert type(model.get_layer("scale")).__name__ == "LayerScale"
    x = np.ones((1, 8), "float32")
    kernel, bias = model.get_layer("block").layers[0].get_weights()
    expected = ((0.5 * x) @ kernel + bias) * 0.1 + 0.5 * x   # the shared scale (0.5) on a and on b
    np.testing.assert_allclose(np.asarray(model({"a": x, "b": x})), expected, rtol=1e-5)


DIGITS_SCALE = spec_text("""
    graphspec: 1
    name: digits_scale
    inputs:
      image: {shape: [8, 8, 1]}
    nodes:
      scaled: {type: Rescaling, scale: 0.0625}
      flat: {type: Flatten}
      hidden: {type: Dense, units: 16, activation: relu}
      ls: {type: LayerScale, init_values: 0.5, projection_dim: 16}
      digit: {type: Dense, units: 10, activation: softmax}
    outputs: [digit]
    compile: {optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}
    train:
      data: {builtin: digits, map: {digit: label}}
      validation: {split: 0.2}
      batch_size: 128
      epochs: 1
      seed: 7
    """)


def test_train_evaluate_and_predict_take_the_plugin_option(tmp_path):
    """--plugin on the training commands (in-process, in a copied context: enabling lasts for the command)."""
    import contextvars

    from typer.testing import CliRunner

    from graphspec.cli import app

    spec = tmp_path / "digits_scale.yaml"
    spec.write_text(DIGITS_SCALE)
    runner = CliRunner()

    def invoke(*args):
        return contextvars.copy_context().run(runner.invoke, app, list(args))

    result = invoke("train", str(spec), "--runs", str(tmp_path / "runs"), "--name", "r", "-v", "0")
    assert result.exit_code == 2 and "plugin-not-enabled" in result.output
    result = invoke("train", "--plugin", APPLICATIONS, str(spec), "--runs", str(tmp_path / "runs"), "--name", "r",
                    "-v", "0")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "digits_scale" / "r"
    assert json.loads((run / "spec.json").read_text())["plugin_versions"] == [load_plugin(APPLICATIONS).record()]
    result = invoke("evaluate", "--plugin", APPLICATIONS, str(run))
    assert result.exit_code == 0 and "accuracy" in result.output, result.output
    result = invoke("predict", "--plugin", APPLICATIONS, str(run), "-o", str(tmp_path / "p.npz"))
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "p.npz")["digit"].shape[1] == 10
    check_errors(CONVNEXT)  # nothing stayed enabled after the commands


def test_a_plugin_may_give_its_declaration_as_a_function(tmp_path, monkeypatch):
    name = "function_form_plugin"
    source = TEAM_PLUGIN.format(name=name).replace(
        'GRAPHSPEC_PLUGIN = {"layers": [Scale], "rules": {"Scale": scale_rule}}',
        'def GRAPHSPEC_PLUGIN():\n    return {"layers": [Scale], "version": "9.9"}')
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = load_plugin(name)
    assert list(plugin.classes) == ["Scale"] and plugin.rules == {} and plugin.version == "9.9"
    with using([plugin]):
        checked = check_text(TEAM_SPEC.format(name=name))
    assert checked.inferred.nodes["s"].outputs is None  # no rule: Keras infers it at build
