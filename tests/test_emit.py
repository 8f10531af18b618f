"""Emit: what the built Keras model looks like, beyond the gallery's comparisons."""

import numpy as np
import pytest

from graphspec.emit import emit, read_artifact_metadata, save_artifact
from graphspec.errors import EmitError
from graphspec.pipeline import check_text

keras = pytest.importorskip("keras")


def build(text: str, **kwargs):
    return emit(check_text(text, file="s.yaml"), **kwargs)


SHARED_OUTPUTS = """graphspec: 1
name: m
inputs: {x: {shape: [4]}, w: {shape: [4]}, seq: {shape: [5, 3]}}
layers: {s: {type: Dense, units: 1}}
nodes:
  d: {shared: s, input: x}
  e: {shared: s, input: w}
  l: {type: LSTM, units: 2, return_state: true, input: seq}
outputs: [d, e, "l[1]"]
compile: {optimizer: sgd, loss: {d: mse, e: mae, l_1: mse}}
"""


def test_list_outputs_are_named_after_the_spec_even_from_shared_or_multi_output_layers():
    model = build(SHARED_OUTPUTS)
    assert model.output_names == ["d", "e", "l_1"]
    x = {"x": np.ones((8, 4)), "w": np.ones((8, 4)), "seq": np.ones((8, 5, 3))}
    y = {"d": np.zeros((8, 1)), "e": np.zeros((8, 1)), "l_1": np.zeros((8, 2))}
    history = model.fit(x, y, epochs=1, verbose=0)
    assert {"d_loss", "e_loss", "l_1_loss"} <= set(history.history)
    # one Dense instance: both calls share its weights
    assert [layer.name for layer in model.layers].count("s") == 1


def test_mapping_outputs_are_keyed_by_output_name():
    model = build(SHARED_OUTPUTS.replace('outputs: [d, e, "l[1]"]', "outputs: {first: d, second: e}")
                  .replace("{d: mse, e: mae, l_1: mse}", "{first: mse, second: mae}"))
    out = model.predict({"x": np.ones((2, 4)), "w": np.ones((2, 4)), "seq": np.ones((2, 5, 3))}, verbose=0)
    assert set(out) == {"first", "second"}


def test_keras_errors_point_at_the_argument_keras_names():
    with pytest.raises(EmitError) as info:
        build("graphspec: 1\nname: m\ninputs: {x: {shape: [4]}}\nnodes:\n"
              "  drop: {type: Dropout, rate: 1.5}\noutputs: [drop]\n")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "keras-error" and (diagnostic.line, diagnostic.col) == (5, 25)  # at 'rate'
    assert "Arguments received" not in diagnostic.message


def test_nested_objects_and_schedules_are_built_from_the_allow_list():
    model = build("""graphspec: 1
name: m
inputs: {x: {shape: [4]}}
nodes:
  d: {type: Dense, units: 3, kernel_initializer: {type: HeNormal, seed: 1}, kernel_regularizer: {type: L2, l2: 0.01},
      kernel_constraint: {type: MaxNorm, max_value: 2}, activation: gelu}
outputs: [d]
compile:
  optimizer: {type: SGD, momentum: 0.9,
              learning_rate: {type: ExponentialDecay, initial_learning_rate: 0.1, decay_steps: 10, decay_rate: 0.5}}
  loss: {type: Huber, delta: 2.0}
""")
    dense = model.get_layer("d")
    assert isinstance(dense.kernel_initializer, keras.initializers.HeNormal)
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L2)
    schedule = model.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "ExponentialDecay" and schedule["config"]["decay_rate"] == 0.5
    assert isinstance(model.loss, keras.losses.Huber)


def test_artifact_is_plain_keras_with_spec_hash_and_saved_model_digests(tmp_path):
    checked = check_text(SHARED_OUTPUTS, file="s.yaml")
    path = save_artifact(checked, emit(checked), tmp_path / "m.keras")
    meta = read_artifact_metadata(path)
    assert meta["spec_hash"].startswith("sha256:") and meta["saved_models"] == {}
    loaded = keras.saving.load_model(path)
    assert loaded.output_names == ["d", "e", "l_1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temporary files left


def test_unused_nodes_count_in_neither_check_nor_keras():
    text = """graphspec: 1
name: t
inputs: {v: {shape: [10]}}
layers: {s: {type: Dense, units: 3}}
nodes:
  used: {type: Dense, units: 10, input: v}
  unused: {type: Dense, units: 100, input: v}
  unused_bn: {type: BatchNormalization, input: unused}
  s_unused: {shared: s, input: v}
  s_used: {shared: s, input: used}
  out: {type: Dense, units: 2, input: s_used}
outputs: [out]
"""
    checked = check_text(text, file="s.yaml")
    assert model_params(emit(checked)) == (checked.inferred.total_params, checked.inferred.trainable_params) == (151, 151)


def model_params(model) -> tuple[int, int]:
    """(total, trainable) parameters as Keras counts them for the model."""
    return model.count_params(), sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("node", [
    "{type: MultiHeadAttention, num_heads: 2, key_dim: 4, trainable: false, input: {query: x, value: x}}",
    "{type: GroupQueryAttention, head_dim: 4, num_query_heads: 2, num_key_value_heads: 1, trainable: false, "
    "input: {query: x, value: x}}",
    "{type: Bidirectional, layer: {type: LSTM, units: 3, trainable: false}, input: x}",
    "{type: Bidirectional, layer: {type: LSTM, units: 3}, trainable: false, input: x}",
    "{sequential: [{type: MultiHeadAttention, num_heads: 2, key_dim: 4}], trainable: false, input: x}",
])
def test_frozen_layers_have_no_trainable_weights_in_the_model(node):
    """A layer frozen in its constructor keeps sublayers Keras builds later trainable, unless emit freezes them."""
    text = f"graphspec: 1\nname: t\ninputs: {{x: {{shape: [5, 8]}}}}\nnodes:\n  a: {node}\noutputs: [a]\n"
    if "sequential" in node:
        with pytest.raises(Exception):  # a Sequential block passes one tensor: MHA needs query and value
            build(text)
        return
    checked = check_text(text, file="s.yaml")
    model = emit(checked)
    assert model_params(model) == (checked.inferred.total_params, checked.inferred.trainable_params)
    assert checked.inferred.trainable_params == 0


def test_loss_scale_optimizer_wraps_an_inner_optimizer_built_from_the_allow_list():
    text = """graphspec: 1
name: m
inputs: {x: {shape: [4]}}
nodes:
  d: {type: Dense, units: 2, dtype: mixed_float16}
  out: {type: Activation, activation: linear, dtype: float32}
outputs: [out]
compile:
  optimizer:
    type: LossScaleOptimizer
    inner_optimizer: {type: Adam, learning_rate: {type: ExponentialDecay, initial_learning_rate: 0.01,
                                                    decay_steps: 10, decay_rate: 0.9}}
    initial_scale: 1024.0
  loss: mse
"""
    model = build(text)
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "LossScaleOptimizer"
    assert type(optimizer.inner_optimizer).__name__ == "Adam"
    model.fit(np.ones((4, 4)), np.zeros((4, 2)), epochs=1, verbose=0)


@pytest.mark.parametrize("where, value", [
    ("bias_initializer", "Constant"), ("bias_initializer", "constant"), ("kernel_regularizer", "l1_l2"),
])
def test_names_keras_cannot_resolve_are_built_by_graphspec(where, value):
    model = build("graphspec: 1\nname: m\ninputs: {x: {shape: [4]}}\nnodes:\n"
                  f"  d: {{type: Dense, units: 2, {where}: {value}}}\noutputs: [d]\n"
                  "compile: {optimizer: Lamb, loss: mse, metrics: [huber, log_cosh]}\n")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), epochs=1, verbose=0)


def test_an_output_renamed_by_identity_keeps_its_dtype_when_the_model_runs():
    model = build("graphspec: 1\nname: m\ninputs: {x: {shape: [5, 3]}}\nnodes:\n"
                  "  l: {type: LSTM, units: 2, return_state: true, dtype: float64}\noutputs: ['l[0]']\n")
    assert model(np.ones((2, 5, 3), "float32")).dtype == "float64" == model.outputs[0].dtype
