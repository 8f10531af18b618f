"""graphspec import: every source kind, readable output, hostile archives, round trips, weights."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphspec.fmt import format_text, is_formatted
from testkit import REPO, codes, diagnostics_of, run_cli

FIXTURES = Path(__file__).parent / "importer"
SAME_BLOCKS_DEEPER = {"resnet101", "resnet152"}
"""Round-tripped through resnet50, whose blocks they repeat more often (the same import, fold and rebuild code,
~25 s more for nothing new); their specs are still compared with keras.applications in tests/gallery."""
GALLERY = sorted(spec for spec in (REPO / "specs").glob("*.yaml") if spec.stem not in SAME_BLOCKS_DEEPER)
BIG = {"resnet50", "resnet101", "resnet152", "resnet34", "resnet18", "mobilenet_v3_small", "convnext_tiny",
       "transformer_encoder_classifier", "digits_cnn", "digits_multi"}
"""Gallery specs that take seconds to build: their round trips are slow tests (CI runs them)."""


@pytest.fixture(scope="module")
def keras():
    from graphspec.backend import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _plugins_of(spec: Path) -> list[str] | None:
    return ["graphspec.plugins.applications"] if "plugins: [graphspec.plugins.applications]" in spec.read_text() \
        else None


def _build_and_save(spec: Path, tmp_path: Path) -> tuple:
    import graphspec
    from graphspec.emit import save_artifact

    checked = graphspec.load(spec, plugins=_plugins_of(spec))
    model = graphspec.build(checked)
    target = tmp_path / f"{spec.stem}.keras"
    save_artifact(checked, model, target)
    return checked, model, target


def _rebuild(text: str, directory: Path, name: str = "imported.yaml"):
    """check (pure Python) and build the imported spec, as `graphspec build` does."""
    from graphspec.emit import emit
    from graphspec.pipeline import check_text
    from graphspec.plugins import using

    checked = check_text(text, file=name, directory=directory)
    with using(checked.graph.plugins):
        return checked, emit(checked, compile=False)


def _assert_same_model(original, rebuilt, *, atol: float = 0.0) -> None:
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in original.layers]
    assert [type(layer).__name__ for layer in rebuilt.layers] == [type(layer).__name__ for layer in original.layers]
    assert rebuilt.count_params() == original.count_params()
    assert [w.dtype for w in rebuilt.weights] == [w.dtype for w in original.weights]
    rebuilt.set_weights(original.get_weights())
    rng = np.random.RandomState(0)
    inputs = []
    for tensor in original.inputs:
        shape = [2] + [d or 5 for d in tensor.shape[1:]]
        inputs.append(rng.randint(0, 20, shape).astype(tensor.dtype) if "int" in str(tensor.dtype)
                      else rng.rand(*shape).astype(tensor.dtype))
    feed = inputs[0] if len(inputs) == 1 else inputs
    # Called eagerly, not through predict(): the same layers' computation without tracing a tf.function
    # of a few hundred layers per model (about 5 s each for NASNetMobile; the suite runs 30 of these).
    want = original(feed, training=False)
    got = rebuilt(feed, training=False)
    want = want if isinstance(want, (list, tuple)) else list(want.values()) if isinstance(want, dict) else [want]
    got = got if isinstance(got, (list, tuple)) else list(got.values()) if isinstance(got, dict) else [got]
    for a, b in zip(want, got):
        assert float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) <= atol


# -- round trips over the gallery: spec -> build -> import -> the same graph -------------------------------

def _gallery_params():
    return [pytest.param(spec, id=spec.stem, marks=[pytest.mark.slow] if spec.stem in BIG else [])
            for spec in GALLERY]


@pytest.mark.parametrize("spec", _gallery_params())
def test_gallery_round_trip_same_graph_and_model(spec, tmp_path, keras):
    """build -> import -> the same expanded graph (graph hash) -> build -> the same Keras model, bit-identical
    outputs with the original's weights. (The encoder of model_as_layer is found beside the imported spec.)"""
    from graphspec.canonical import graph_hash
    from graphspec.importer import import_model

    checked, model, archive = _build_and_save(spec, tmp_path)
    result = import_model(str(archive), directory=REPO / "specs")
    rechecked, rebuilt = _rebuild(result.text, REPO / "specs")
    assert graph_hash(rechecked) == graph_hash(checked)
    assert is_formatted(result.text), "what import writes passes `graphspec fmt --check`"
    assert result.data["expect"]["params"] == model.count_params()
    _assert_same_model(model, rebuilt)


# -- readable output ---------------------------------------------------------------------------------------

def test_output_is_readable_defaults_left_out_input_omitted_flow_style(tmp_path, keras):
    from graphspec.importer import import_model

    x = keras.Input((28, 28, 3), name="image")
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    y = keras.layers.MaxPooling2D(2, name="pool")(y)
    y = keras.layers.Flatten(name="flat")(y)
    other = keras.layers.Dense(4, name="side", kernel_initializer="he_normal")(y)
    z = keras.layers.Concatenate(name="merged")([y, other])
    z = keras.layers.Dense(1, activation="sigmoid", name="score")(z)
    model = keras.Model(x, z, name="readable")
    path = tmp_path / "m.json"
    path.write_text(model.to_json())
    text = import_model(str(path), header=False).text
    nodes = text.split("nodes:\n")[1].split("\n\n")[0].splitlines()
    assert nodes == [
        "  conv: {type: Conv2D, filters: 8, kernel_size: 3, padding: same, activation: relu}",
        "  pool: {type: MaxPooling2D}",
        "  flat: {type: Flatten}",
        "  side: {type: Dense, units: 4, kernel_initializer: he_normal}",
        "  merged: {type: Concatenate, input: [flat, side]}",
        "  score: {type: Dense, units: 1, activation: sigmoid}",
    ]
    assert "inputs:\n  image: {shape: [28, 28, 3]}" in text
    assert "expect:\n  params: " + str(model.count_params()) in text
    assert "output_shapes: {score: [1]}" in text


def test_what_import_writes_passes_fmt_check(tmp_path, keras):
    """Found from outside: an imported spec failed `graphspec fmt --check` (a float written 1e-06 where fmt
    writes 1e-6, an output named 'y' quoted where fmt leaves it plain). Import now ends in fmt's layout."""
    from graphspec.importer import import_model

    x = keras.Input((8,), name="x")
    h = keras.layers.Dense(16, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-4), name="h")(x)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name="ln")(h)
    y = keras.layers.Dense(3, name="y")(h)
    path = tmp_path / "m.json"
    path.write_text(keras.Model(x, y, name="small").to_json())
    text = import_model(str(path)).text
    assert "epsilon: 1e-6}" in text and "outputs: [y]" in text
    assert is_formatted(text) and format_text(text) == text


def test_import_writes_its_own_layout_when_fmt_cannot_format(tmp_path, keras, monkeypatch):
    """fmt's layout is a courtesy: a spec fmt cannot format is still written, as the importer laid it out."""
    import graphspec.fmt
    from graphspec.errors import Diagnostic
    from graphspec.importer import import_model

    def refuse(text, file=None):
        raise graphspec.fmt.FormatError([Diagnostic(code="fmt-unsupported", message="no")])

    monkeypatch.setattr(graphspec.fmt, "canonical_text", refuse)
    x = keras.Input((8,), name="x")
    path = tmp_path / "m.json"
    path.write_text(keras.Model(x, keras.layers.Dense(3, name="y")(x), name="small").to_json())
    text = import_model(str(path), header=False).text
    assert '"y": {type: Dense, units: 3}' in text  # the importer's own quoting, not fmt's


@pytest.mark.parametrize("name", ["d\x7f", "a\x85b", "x\u2028y", "a\x00b", "tab\tx", "y", "emoji\U0001F600"])
def test_the_writer_escapes_what_yaml_does_not_allow(name):
    """Review finding: JSON's quoting left DEL, NEL and the line separators raw, which YAML refuses, so an
    imported layer named 'd\\x7f' made import fail; every name now reads back as itself."""
    from graphspec.importer.writer import scalar
    from graphspec.loader import loads

    assert loads(f"key: {scalar(name)}\n").data["key"] == name


# -- source kinds --------------------------------------------------------------------------------------------

def test_sequential_json_becomes_a_functional_spec(tmp_path, keras):
    from graphspec.importer import import_model

    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(5, activation="relu", name="hidden"),
                              keras.layers.Dropout(0.25, name="drop"), keras.layers.Dense(2, name="out")],
                             name="seq")
    path = tmp_path / "seq.json"
    path.write_text(model.to_json())
    result = import_model(str(path))
    assert list(result.data["inputs"]) == ["input_layer"]
    assert list(result.data["nodes"]) == ["hidden", "drop", "out"]
    assert result.data["outputs"] == ["out"]
    _, rebuilt = _rebuild(result.text, tmp_path)
    assert [layer.name for layer in rebuilt.layers[1:]] == ["hidden", "drop", "out"]
    rebuilt.set_weights(model.get_weights())
    x = np.random.RandomState(1).rand(3, 10).astype("float32")
    assert np.array_equal(model.predict(x, verbose=0), rebuilt.predict(x, verbose=0))


def test_keras2_legacy_json_config(tmp_path):
    """Keras 2's to_json() (inbound nodes as [layer, node, tensor, kwargs] lists; batch_input_shape)."""
    from graphspec.importer import import_model

    result = import_model(str(FIXTURES / "keras2_functional.json"))
    assert result.data["inputs"] == {"features": {"shape": [16]}}
    assert result.data["nodes"]["hidden"] == {"type": "Dense", "units": 8, "activation": "relu"}
    assert result.data["nodes"]["merged"]["input"] == ["hidden", "skip"]
    assert result.data["expect"]["params"] == 16 * 8 + 8 + 16 * 8 + 8 + 16 * 1 + 1


def test_shared_layers_multi_output_refs_ops_and_nested_sequential(tmp_path, keras):
    from graphspec.importer import import_model

    a = keras.Input((6,), name="a")
    b = keras.Input((6,), name="b")
    shared = keras.layers.Dense(4, name="proj")
    pa, pb = shared(a), shared(b)
    diff = keras.ops.abs(keras.ops.subtract(pa, pb))
    seq = keras.Sequential([keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(3)], name="head")
    seq_out = seq(diff)
    tokens = keras.Input((5, 4), name="tokens")
    _, h, c = keras.layers.LSTM(3, return_state=True, name="enc")(tokens)
    merged = keras.layers.Concatenate(name="merged")([seq_out, h, c])
    out = keras.layers.Dense(1, name="out")(merged)
    model = keras.Model([a, b, tokens], out, name="mixed")
    path = tmp_path / "mixed.json"
    path.write_text(model.to_json())
    result = import_model(str(path))
    data = result.data
    assert data["layers"] == {"proj": {"type": "Dense", "units": 4}}
    assert data["nodes"]["proj_call1"] == {"shared": "proj", "input": "a"}
    assert data["nodes"]["proj_call2"] == {"shared": "proj", "input": "b"}
    ops = [node for node in data["nodes"].values() if "op" in node]
    assert [node["op"] for node in ops] == ["subtract", "absolute"]
    assert data["nodes"]["head"]["sequential"] == [{"type": "Dense", "units": 3, "activation": "tanh"},
                                                   {"type": "Dense", "units": 3}]
    assert data["nodes"]["merged"]["input"] == ["head", "enc[1]", "enc[2]"]
    _, rebuilt = _rebuild(result.text, tmp_path)
    _assert_same_model_counts(model, rebuilt)


def _assert_same_model_counts(model, rebuilt) -> None:
    assert rebuilt.count_params() == model.count_params()
    rebuilt.set_weights(model.get_weights())
    rng = np.random.RandomState(2)
    feed = [rng.rand(2, *t.shape[1:]).astype("float32") for t in model.inputs]
    assert np.array_equal(model.predict(feed, verbose=0), rebuilt.predict(feed, verbose=0))


def test_application_source_with_arguments(keras):
    from graphspec.importer import import_model

    result = import_model("keras.applications.VGG16", kwargs={"input_shape": [32, 32, 3], "include_top": False})
    assert [value for value in result.data["inputs"].values()] == [{"shape": [32, 32, 3]}]
    assert result.data["expect"]["params"] == result.model.count_params()
    assert "block5_pool" in result.data["nodes"]


def test_application_refuses_downloading_weights():
    from graphspec.importer import import_model
    from graphspec.importer.source import ImportSourceError

    error, diagnostics = diagnostics_of(import_model, "keras.applications.VGG16", kwargs={"weights": "imagenet"})
    assert isinstance(error, ImportSourceError) and codes(diagnostics) == ["bad-argument"]


def test_factory_needs_allow_code_and_then_runs(monkeypatch, keras):
    from graphspec.importer import import_model

    monkeypatch.syspath_prepend(str(FIXTURES))
    sys.modules.pop("factory_models", None)
    _, diagnostics = diagnostics_of(import_model, "factory_models:small")
    assert codes(diagnostics) == ["code-not-allowed"]
    assert "factory_models" not in sys.modules  # nothing was run
    result = import_model("factory_models:small", kwargs={"width": 7}, allow_code=True)
    assert result.data["nodes"]["hidden"] == {"type": "Dense", "units": 7, "activation": "relu"}


# -- refusals: custom layers, hostile archives ---------------------------------------------------------------

def _archive(tmp_path: Path, config: dict | bytes, name: str = "hostile.keras", extra: dict | None = None) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", config if isinstance(config, bytes) else json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3"}))
        for member, data in (extra or {}).items():
            archive.writestr(member, data)
    return path


def _config_with(layer: dict) -> dict:
    base = json.loads((FIXTURES / "keras3_small.json").read_text())
    base["config"]["layers"].insert(1, layer)
    return base


def test_custom_layer_needs_its_plugin(tmp_path):
    from graphspec.importer import import_model

    layer = {"module": "my_team.layers", "class_name": "FancyNorm", "config": {"name": "fancy"},
             "registered_name": "my_team>FancyNorm", "name": "fancy", "inbound_nodes": []}
    _, diagnostics = diagnostics_of(import_model, str(_archive(tmp_path, _config_with(layer))))
    assert codes(diagnostics) == ["unknown-class"]
    assert "'FancyNorm'" in diagnostics[0].message and "'fancy'" in diagnostics[0].message
    assert "--plugin" in diagnostics[0].hint


@pytest.mark.parametrize("class_name", ["Lambda", "TFSMLayer"])
def test_code_running_layer_is_refused(tmp_path, class_name):
    from graphspec.importer import import_model

    layer = {"module": "keras.layers", "class_name": class_name, "config": {"name": "evil", "function": "x"},
             "registered_name": None, "name": "evil", "inbound_nodes": []}
    _, diagnostics = diagnostics_of(import_model, str(_archive(tmp_path, _config_with(layer))))
    assert codes(diagnostics) == ["unsafe-model"] and class_name in diagnostics[0].message


def test_zip_bomb_is_refused(tmp_path):
    from graphspec.importer import import_model

    path = _archive(tmp_path, (FIXTURES / "keras3_small.json").read_bytes(),
                    extra={"model.weights.h5": b"\0" * (50 * 1024 * 1024)})
    _, diagnostics = diagnostics_of(import_model, str(path))
    assert codes(diagnostics) == ["unsafe-archive"] and "zip bomb" in diagnostics[0].message


def test_path_tricks_in_member_names_are_refused(tmp_path):
    from graphspec.importer import import_model

    path = _archive(tmp_path, (FIXTURES / "keras3_small.json").read_bytes(), extra={"../escape.txt": b"x"})
    _, diagnostics = diagnostics_of(import_model, str(path))
    assert codes(diagnostics) == ["unsafe-archive"] and "../escape.txt" in diagnostics[0].message


def test_huge_config_is_refused_without_reading_it(tmp_path):
    from graphspec.importer import import_model

    huge = b'{"class_name": "Functional", "config": {"layers": [' + b" " * (100 * 1024 * 1024) + b"]}}"
    _, diagnostics = diagnostics_of(import_model, str(_archive(tmp_path, huge)))
    assert codes(diagnostics) == ["unsafe-archive"] and "too large" in diagnostics[0].message


def test_cli_hostile_archive_writes_nothing(tmp_path):
    layer = {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "evil"}, "registered_name": None,
             "name": "evil", "inbound_nodes": []}
    source = _archive(tmp_path, _config_with(layer))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run_cli("import", str(source), "-o", str(out_dir / "spec.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "error[unsafe-model]" in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# -- the command line and weights ----------------------------------------------------------------------------

def test_cli_import_weights_build_gives_identical_outputs(tmp_path, keras):
    """A trained .keras file -> spec + weights -> build: the same model, bit-identical outputs, the weights'
    SHA-256 in the artifact."""
    x = keras.Input((4,), name="x")
    y = keras.layers.Dense(3, activation="relu", name="hidden")(x)
    y = keras.layers.Dense(2, name="out")(y)
    model = keras.Model(x, y, name="trained")
    model.set_weights([np.random.RandomState(3).rand(*w.shape).astype("float32") for w in model.get_weights()])
    source = tmp_path / "trained.keras"
    model.save(source)
    result = run_cli("import", str(source), "-o", "spec.yaml", "--weights", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "spec.yaml").read_text()
    assert "weights: spec.weights.h5" in text and (tmp_path / "spec.weights.h5").is_file()
    built = run_cli("build", "spec.yaml", "-o", "rebuilt.keras", "--no-summary", cwd=tmp_path, timeout=120)
    assert built.returncode == 0, built.stderr
    rebuilt = keras.saving.load_model(tmp_path / "rebuilt.keras", compile=False)
    data = np.random.RandomState(4).rand(5, 4).astype("float32")
    assert np.array_equal(model.predict(data, verbose=0), rebuilt.predict(data, verbose=0))
    from graphspec.emit import read_artifact_metadata, weights_digest

    assert read_artifact_metadata(tmp_path / "rebuilt.keras")["weights"] == weights_digest(tmp_path / "spec.weights.h5")


# -- keras.applications: the 13 of the issue -----------------------------------------------------------------

APPLICATIONS = {"ResNet50": 32, "ResNet50V2": 32, "MobileNetV2": 32, "MobileNetV3Small": 32, "DenseNet121": 32,
                "InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "EfficientNetB0": 32,
                "EfficientNetV2B0": 32, "ConvNeXtTiny": 32, "NASNetMobile": 32, "VGG16": 32}
"""Each at the smallest input it accepts (32x32, or its minimum), to keep CI lean."""


@pytest.mark.slow
@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_application_import_check_build_identical(name, tmp_path, keras):
    """keras.applications.NAME(weights=None) -> import -> check passes -> build: the same layer names and types in
    order, parameter counts and weight dtypes, max abs output difference 0.0 with the weights copied."""
    from graphspec.importer import import_model

    size = APPLICATIONS[name]
    result = import_model(f"keras.applications.{name}", kwargs={"input_shape": [size, size, 3]})
    checked, rebuilt = _rebuild(result.text, tmp_path, f"{name}.yaml")
    assert checked.spec.expect.params == result.model.count_params()
    assert is_formatted(result.text)
    _assert_same_model(result.model, rebuilt)


def test_docs_migration_example_is_what_import_writes(monkeypatch, keras):
    """docs/import.md's step 1 shows the spec imported from seed 000's two-branch factory: it is the real output."""
    from graphspec.importer import import_model

    monkeypatch.syspath_prepend(str(FIXTURES))
    result = import_model("seed_models:two_branch", allow_code=True, header=False)
    doc = (REPO / "docs" / "import.md").read_text(encoding="utf-8")
    shown = doc.split("It writes:\n\n   ```yaml\n")[1].split("   ```")[0]
    assert "\n".join(line[3:] for line in shown.splitlines()) + "\n" == result.text


def test_readme_import_example_is_what_import_prints():
    """README's `graphspec import specs/encoder.keras` output block is the command's real output."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = readme.split("$ graphspec import specs/encoder.keras\n")[1].split("```")[0]
    result = run_cli("import", "specs/encoder.keras", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown


# -- --fold ----------------------------------------------------------------------------------------------------

def _stacked_model(keras):
    x = keras.Input((8,), name="x")
    y = x
    for stage, width in enumerate([16, 16, 32], start=1):
        for unit in (1, 2):
            name = f"stage{stage}_unit{unit}"
            h = keras.layers.Dense(width, activation="relu", name=f"{name}_dense")(y)
            h = keras.layers.Dense(width, name=f"{name}_proj")(h)
            y = keras.layers.Add(name=f"{name}_add")([keras.layers.Dense(width, name=f"{name}_skip")(y), h])
    return keras.Model(x, keras.layers.Dense(2, name="head")(y), name="stacked")


def test_fold_writes_blocks_and_repeat_with_the_same_graph(tmp_path, keras):
    from graphspec.canonical import graph_hash
    from graphspec.importer import import_model

    model = _stacked_model(keras)
    path = tmp_path / "stacked.json"
    path.write_text(model.to_json())
    flat = import_model(str(path))
    folded = import_model(str(path), fold=True)
    assert list(folded.data["blocks"]) == ["unit"]
    assert folded.data["blocks"]["unit"]["params"] == {"units": {"type": "int"}}
    calls = folded.data["nodes"]
    assert calls["stage1_unit2"] == {"block": "unit", "units": 16, "repeat": {"count": 2, "name": "stage1_unit${i + 1}"}}
    assert len(folded.text.splitlines()) < len(flat.text.splitlines())
    checked, rebuilt = _rebuild(folded.text, tmp_path)
    assert graph_hash(checked) == graph_hash(_rebuild(flat.text, tmp_path)[0])
    _assert_same_model(model, rebuilt)


@pytest.mark.slow
def test_fold_resnet50_is_short_and_the_same_model(tmp_path, keras):
    """--fold on ResNet-50: <= 80 lines (issue 8's bar), blocks for the two kinds of residual unit, the same model."""
    from graphspec.importer import import_model

    result = import_model("keras.applications.ResNet50", kwargs={"input_shape": [32, 32, 3]}, fold=True)
    assert len(result.text.splitlines()) <= 80
    assert len(result.data["blocks"]) == 2
    _, rebuilt = _rebuild(result.text, tmp_path)
    _assert_same_model(result.model, rebuilt)


def test_nested_functional_model_is_refused_with_a_way_out(tmp_path, keras):
    from graphspec.importer import import_model

    inner_in = keras.Input((4,), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Dense(2, name="inner_dense")(inner_in), name="inner")
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(1, name="out")(inner(x)), name="outer")
    path = tmp_path / "outer.json"
    path.write_text(model.to_json())
    _, diagnostics = diagnostics_of(import_model, str(path))
    assert codes(diagnostics) == ["nested-functional"] and "'inner'" in diagnostics[0].message
    assert "model:" in diagnostics[0].hint


def test_arg_values_are_yaml_and_malformed_ones_are_refused():
    from graphspec.importer.command import parse_args

    assert parse_args(["input_shape=[96,96,3]", "include_top=false", "classes=10"]) == {
        "input_shape": [96, 96, 3], "include_top": False, "classes": 10}
    _, diagnostics = diagnostics_of(parse_args, ["input_shape"])
    assert codes(diagnostics) == ["bad-argument"]
