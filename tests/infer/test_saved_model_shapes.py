"""Shapes through ``model:`` nodes: check infers a saved model's outputs from its config.json,
and they are what Keras builds (shapes, dtypes, parameter counts)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphspec.infer.tensor import TensorInfo
from graphspec.pipeline import check_text
from testkit import check_errors, codes, spec_text

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _config_only(source: Path, target: Path) -> Path:
    """A copy of a .keras archive with its config.json alone: all that check reads."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        out.writestr("config.json", archive.read("config.json"))
    return target


ENCODER = Path(__file__).resolve().parents[2] / "specs" / "encoder.keras"


def spec_with(model: str, inputs: str, node_input: str, extra: str = "", trainable: str = "true") -> str:
    return spec_text(f"""
        graphspec: 1
        name: uses_saved
        inputs: {{{inputs}}}
        nodes:
          saved: {{model: {model}, trainable: {trainable}, input: {node_input}}}
        {extra}
        outputs: [saved]
        """)


def test_the_checked_in_encoder_is_inferred_without_keras(tmp_path):
    _config_only(ENCODER, tmp_path / "enc.keras")
    checked = check_text(spec_with("enc.keras", "x: {shape: [32]}", "x", trainable="false"), directory=tmp_path)
    info = checked.inferred.nodes["saved"]
    assert info.outputs == TensorInfo((None, 8))
    assert (info.params, info.non_trainable_params) == (0, 664)  # frozen: every weight non-trainable
    checked = check_text(spec_with("enc.keras", "x: {shape: [32]}", "x"), directory=tmp_path)
    assert (checked.inferred.nodes["saved"].params, checked.inferred.total_params) == (664, 664)


def test_an_input_the_saved_model_was_not_built_for_is_refused_at_the_node(tmp_path):
    _config_only(ENCODER, tmp_path / "enc.keras")
    error = check_errors_in(tmp_path, spec_with("enc.keras", "x: {shape: [16]}", "x"))
    assert codes(error.diagnostics) == ["shape-mismatch"]
    assert "the saved model's input 'encoder_input' takes (None, 32), got (None, 16)" in error.diagnostics[0].message
    error = check_errors_in(tmp_path, spec_with("enc.keras", "x: {shape: [32]}, y: {shape: [32]}", "[x, y]"))
    assert codes(error.diagnostics) == ["wrong-input-count"]


def check_errors_in(directory: Path, text: str):
    from graphspec.errors import GraphspecError

    with pytest.raises(GraphspecError) as info:
        check_text(text, directory=directory)
    return info.value


keras = pytest.importorskip("keras")


def _save(model, path: Path) -> Path:
    model.save(path)
    return path


def _models(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    """Saved models of several kinds: file, spec inputs, the node's input."""
    layers = keras.layers
    # Functional, two inputs and two outputs, a shared layer called twice, an LSTM's states, BatchNorm.
    a, b = keras.Input((6, 4), name="a"), keras.Input((5,), name="b")
    shared = layers.Dense(4, name="shared")
    seq, h, c = layers.LSTM(3, return_sequences=True, return_state=True, name="lstm")(shared(a))
    h2 = layers.LSTM(3, name="lstm2")(seq, initial_state=[h, c])
    side = layers.BatchNormalization(name="bn")(shared(layers.Dense(4, name="pre")(b)))
    merged = layers.Concatenate(name="cat")([h2, side])
    multi = keras.Model([a, b], [merged, layers.Dense(2, name="head")(seq)], name="multi")
    # Sequential with an InputLayer.
    sequential = keras.Sequential([keras.Input((10,)), layers.Dense(7), layers.Dropout(0.1), layers.Dense(3)],
                                  name="seq")
    # A nested model inside: left to Keras.
    inner = keras.Sequential([keras.Input((3,)), layers.Dense(2)], name="inner")
    x = keras.Input((3,))
    nested = keras.Model(x, inner(x), name="nested")
    return {
        "multi": (_save(multi, tmp_path / "multi.keras"), "p: {shape: [6, 4]}, q: {shape: [5]}", "[p, q]"),
        "sequential": (_save(sequential, tmp_path / "seq.keras"), "p: {shape: [10]}", "p"),
        "nested": (_save(nested, tmp_path / "nested.keras"), "p: {shape: [3]}", "p"),
    }


@pytest.mark.parametrize("trainable", ["true", "false"])
def test_inferred_shapes_and_params_are_what_keras_builds(tmp_path, trainable):
    from graphspec.emit import emit

    for kind, (path, inputs, node_input) in _models(tmp_path).items():
        text = spec_with(path.name, inputs, node_input, trainable=trainable)
        if kind == "multi":
            text = text.replace("outputs: [saved]", "outputs: [\"saved[0]\", \"saved[1]\"]")
        checked = check_text(text, directory=tmp_path)
        info = checked.inferred.nodes["saved"]
        if kind == "nested":
            assert info.outputs is None and info.params is None  # left to Keras, as before
            continue
        model = emit(checked)
        outputs = info.outputs if isinstance(info.outputs, list) else [info.outputs]
        assert [(o.shape, o.dtype) for o in outputs] == [(tuple(t.shape), t.dtype) for t in model.outputs], kind
        trainable_count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert (info.params, info.params + info.non_trainable_params) == (trainable_count, model.count_params()), kind
        assert checked.inferred.total_params == model.count_params()
