"""graphspec export: each format's artifact, run by its own runtime, equals Keras' predict; names are kept."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from testkit import REPO

tf = pytest.importorskip("tensorflow")  # the test extra installs it; never skipped in CI

from graphspec.cli import app  # noqa: E402
from graphspec.export import ExportError, export, load_source, named_model  # noqa: E402

SPECS = REPO / "specs"
ATOL = 1e-5

# The gallery's multi-input and/or multi-output specs (list- and mapping-form outputs, int token inputs,
# shared layers, LSTM, attention).
FAST = ["digits_multi", "seed003_shared_two_outputs"]
SLOW = ["seed001_multi_output_bbox", "seq2seq_lstm", "siamese_l1_distance", "transformer_encoder_classifier"]


def _inputs(model, rng) -> dict[str, np.ndarray]:
    data = {}
    for t in model.inputs:
        shape = [3] + [7 if d is None else d for d in t.shape[1:]]
        if "int" in str(t.dtype):
            data[t.name] = rng.integers(0, 5, size=shape).astype(str(t.dtype))
        else:
            data[t.name] = rng.random(shape, dtype=np.float32)
    return data


def _litert_interpreter(path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


def _run(fmt, path, data):
    if fmt == "saved_model":
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        assert sorted(serve.structured_input_signature[1]) == sorted(data)
        return {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in data.items()}).items()}
    if fmt == "tflite":
        interpreter = _litert_interpreter(path)
        signatures = interpreter.get_signature_list()
        assert list(signatures) == ["serving_default"]
        assert sorted(signatures["serving_default"]["inputs"]) == sorted(data)
        return interpreter.get_signature_runner("serving_default")(**data)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(data)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, data)))


def _parity(spec, tmp_path):
    checked, model = load_source(SPECS / f"{spec}.yaml")
    data = _inputs(model, np.random.default_rng(0))
    expected = named_model(checked, model).predict(list(data.values()), verbose=0)
    assert sorted(expected) == sorted(checked.graph.outputs)
    for fmt, name in (("saved_model", "sm"), ("tflite", "m.tflite"), ("onnx", "m.onnx")):
        done = export(checked, model, tmp_path / name, fmt)
        assert done.inputs == [t.name for t in model.inputs] == list(checked.spec.inputs)
        if done.flex_ops:
            # Keras' LSTM is a while loop over TensorLists, which LiteRT has no builtins for; the
            # converter keeps them as TensorFlow ops, and tf.lite's Python interpreter has no Flex delegate.
            assert (spec, fmt) == ("seq2seq_lstm", "tflite") and "FlexTensorListReserve" in done.flex_ops
            continue
        got = _run(fmt, tmp_path / name, data)
        assert sorted(got) == sorted(checked.graph.outputs), (fmt, list(got))
        for key, value in expected.items():
            assert got[key].shape == value.shape, (fmt, key)
            np.testing.assert_allclose(got[key], value, atol=ATOL, rtol=0, err_msg=f"{spec} {fmt} {key}")


@pytest.mark.parametrize("spec", FAST)
def test_exported_artifacts_equal_keras_predict(spec, tmp_path):
    _parity(spec, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("spec", SLOW)
def test_exported_artifacts_equal_keras_predict_more_specs(spec, tmp_path):
    _parity(spec, tmp_path)


def test_cli_exports_a_built_keras_file_with_its_weights(tmp_path):
    """A .keras file (here: graphspec build's) is exported with its own weights, list-form outputs by name."""
    runner = CliRunner()
    built = tmp_path / "m.keras"
    result = runner.invoke(app, ["build", str(SPECS / "seed003_shared_two_outputs.yaml"), "-o", str(built),
                                 "--no-summary"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export", str(built), "--format", "tflite", "-o", str(tmp_path / "m.tflite")])
    assert result.exit_code == 0, result.output
    assert "inputs input_a, input_b; outputs output_a, output_b" in result.output
    import keras

    model = keras.saving.load_model(built, safe_mode=True)
    data = _inputs(model, np.random.default_rng(1))
    expected = model.predict(list(data.values()), verbose=0)
    got = _run("tflite", tmp_path / "m.tflite", data)
    for key, value in zip(["output_a", "output_b"], expected):
        np.testing.assert_allclose(got[key], value, atol=ATOL, rtol=0)


def test_onnx_without_the_extra_names_it(tmp_path, monkeypatch):
    checked, model = load_source(SPECS / "seed003_shared_two_outputs.yaml")
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ExportError) as caught:
        export(checked, model, tmp_path / "m.onnx", "onnx")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "missing-extra" and "graphspec[onnx]" in diagnostic.hint
    assert not (tmp_path / "m.onnx").exists()


def test_cli_refuses_a_spec_mistake_and_an_existing_folder(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text((SPECS / "seed003_shared_two_outputs.yaml").read_text().replace("input: x_a", "input: x_c"))
    result = runner.invoke(app, ["export", str(bad), "-o", str(tmp_path / "sm")])
    assert result.exit_code == 2 and "error[" in result.stderr and not (tmp_path / "sm").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    result = runner.invoke(app, ["export", str(SPECS / "seed003_shared_two_outputs.yaml"), "-o", str(tmp_path / "full")])
    assert result.exit_code == 2 and "exists and is not empty" in result.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"


def test_set_on_a_trained_model_is_refused(tmp_path):
    built = tmp_path / "m.keras"
    built.write_bytes(b"not read")
    result = CliRunner().invoke(app, ["export", str(built), "--set", "nodes.x_a.units=4", "-o", str(tmp_path / "sm")])
    assert result.exit_code == 2 and "error[bad-option]" in result.stderr and not (tmp_path / "sm").exists()


@pytest.mark.slow
def test_cli_warns_of_flex_ops_in_a_tflite_file(tmp_path):
    out = tmp_path / "s2s.tflite"
    result = CliRunner().invoke(app, ["export", str(SPECS / "seq2seq_lstm.yaml"), "--format", "tflite", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    assert "needs the Flex delegate" in result.stderr and "FlexTensorListReserve" in result.stderr
