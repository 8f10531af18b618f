"""Soundness: what ``check`` accepts builds, runs, and has the shapes, dtypes and parameter counts it said.

Hypothesis draws small specs — chains and branches of common layers with random arguments,
some of them wrong on purpose. ``check`` (pure Python) either refuses a spec with located
errors, or accepts it; an accepted spec is built with Keras and *called on a batch*, and
every shape, dtype and parameter count ``check`` inferred must equal what the model
really produces. Building or running an accepted spec must not fail.

Deterministic in CI (``derandomize=True``, no example database).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphspec.errors import GraphspecError
from graphspec.pipeline import check_text

keras = pytest.importorskip("keras")

BATCH = 3
RUN_SIZE = 24
"""The size given to an axis the spec leaves unknown (``null``) when the model is called: long enough for
the drawn windows and divisible by the drawn Reshape sizes. (Where a size matters — a window, a reshape —
an unknown one is checked only when the model runs, by Keras, for the data it is given.)"""


# --------------------------------------------------------------------------------------------
# Drawing specs
# --------------------------------------------------------------------------------------------

ACTIVATIONS = ["relu", "linear", "tanh", "sigmoid", "softmax", "gelu", "glu"]
SMALL = st.integers(1, 6)


def _maybe(draw, strategy, probability_none: float = 0.5):
    return None if draw(st.floats(0, 1)) < probability_none else draw(strategy)


@st.composite
def layer_config(draw, rank: int) -> dict[str, Any]:
    """One layer applied to a tensor of the given rank (batch included): mostly layers that fit the
    rank, sometimes any layer at all (check must then refuse what cannot work)."""
    fitting = {
        2: ["Dense", "Dropout", "BatchNormalization", "LayerNormalization", "Activation", "Reshape", "Embedding",
            "Dense"],
        3: ["Dense", "Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "LSTM", "GRU",
            "Flatten", "LayerNormalization", "MultiHeadAttention", "Reshape", "Dropout"],
        4: ["Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalMaxPooling2D", "Flatten", "BatchNormalization",
            "Dense", "Reshape", "AdaptiveMaxPooling2D", "SpectralNormalization"],
    }.get(rank, ["Flatten", "Dense"])
    everything = ["Dense", "Conv1D", "Conv2D", "LSTM", "MaxPooling2D", "Flatten", "Embedding"]
    layer = draw(st.sampled_from(fitting)) if draw(st.integers(0, 9)) else draw(st.sampled_from(everything))
    config: dict[str, Any] = {"type": layer}
    if layer == "Dense":
        config.update(units=draw(SMALL), activation=draw(st.sampled_from(ACTIVATIONS)),
                      use_bias=draw(st.booleans()))
    elif layer in ("Conv1D", "Conv2D"):
        config.update(filters=draw(SMALL), kernel_size=draw(st.integers(1, 4)), strides=draw(st.integers(1, 2)),
                      padding=draw(st.sampled_from(["valid", "same"])))
        if layer == "Conv1D" and draw(st.booleans()):
            config.update(padding="causal", strides=1, dilation_rate=draw(st.integers(1, 2)))
    elif layer in ("MaxPooling1D", "AveragePooling1D", "MaxPooling2D", "AveragePooling2D"):
        config.update(pool_size=draw(st.integers(1, 3)), padding=draw(st.sampled_from(["valid", "same"])))
    elif layer == "SpectralNormalization":  # no shape rule: its output shape is Keras' to tell
        config.update(layer={"type": "Conv2D", "filters": draw(SMALL), "kernel_size": 1})
    elif layer == "AdaptiveMaxPooling2D":
        config.update(output_size=draw(st.integers(1, 3)))
    elif layer == "Dropout":
        config.update(rate=draw(st.sampled_from([0.0, 0.25, 0.5])))
    elif layer == "BatchNormalization":
        config.update(center=draw(st.booleans()), scale=draw(st.booleans()))
    elif layer == "LayerNormalization":
        config.update(axis=draw(st.sampled_from([-1, 1])))
    elif layer == "Activation":
        config.update(activation=draw(st.sampled_from(ACTIVATIONS)))
    elif layer == "Embedding":
        config.update(input_dim=draw(st.integers(2, 8)), output_dim=draw(SMALL))
    elif layer in ("LSTM", "GRU"):
        config.update(units=draw(SMALL), return_sequences=draw(st.booleans()))
        if draw(st.integers(0, 4)) == 0:
            config.update(return_state=True)
    elif layer == "MultiHeadAttention":
        config.update(num_heads=draw(st.integers(1, 3)), key_dim=draw(st.integers(1, 4)))
    elif layer == "Reshape":
        config.update(target_shape=draw(st.sampled_from([[-1], [-1, 1], [1, -1], [2, -1]])) if draw(st.integers(0, 3))
                      else draw(st.lists(st.sampled_from([1, 2, 3, 4, 6, -1]), min_size=1, max_size=3)))
    if layer not in ("SpectralNormalization", "Dropout", "Reshape", "Flatten", "Activation", "GlobalAveragePooling1D", "GlobalMaxPooling2D",
                     "MaxPooling1D", "AveragePooling1D", "MaxPooling2D", "AveragePooling2D", "AdaptiveMaxPooling2D"):
        if draw(st.integers(0, 5)) == 0:
            config["trainable"] = False
    if draw(st.integers(0, 9)) == 0:
        config["dtype"] = draw(st.sampled_from(["float64", "mixed_float16", "float16"]))
    return config


def _rank_after(config: dict, rank: int) -> int:
    """A guess of the output rank, to steer the next draw towards layers that fit (check decides)."""
    kind = config["type"]
    if kind in ("Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling2D"):
        return 2
    if kind == "Reshape":
        return len(config["target_shape"]) + 1
    if kind == "Embedding":
        return rank + 1
    if kind in ("LSTM", "GRU"):
        return 3 if config.get("return_sequences") else 2
    return rank


@st.composite
def specs(draw) -> dict:
    kind = draw(st.sampled_from(["vector", "sequence", "image", "tokens"]))
    if kind == "vector":
        shape, dtype = [draw(st.integers(1, 12))], "float32"
    elif kind == "sequence":
        shape, dtype = [_maybe(draw, st.integers(1, 8), 0.2), draw(st.integers(1, 8))], "float32"
    elif kind == "image":
        shape, dtype = [draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 4))], "float32"
    else:
        shape, dtype = [draw(st.integers(1, 8))], "int32"
    rank = len(shape) + 1
    nodes: dict[str, dict] = {}
    previous = "x"
    for i in range(draw(st.integers(1, 4))):
        config = draw(layer_config(rank))
        config["input"] = previous if config["type"] != "MultiHeadAttention" else {"query": previous,
                                                                                  "value": previous}
        if config["type"] in ("LSTM", "GRU") and draw(st.integers(0, 3)) == 0:
            # Start from a state computed from the input (an LSTM needs two: check must refuse one).
            nodes[f"h{i}"] = {"type": "Dense", "units": config["units"], "input": "x"}
            config["input"] = {"sequences": previous, "initial_state": f"h{i}"}
        name = f"n{i}"
        nodes[name] = config
        previous, rank = name, _rank_after(config, rank)
        if config.get("return_state"):
            previous = f"{name}[0]"
    outputs = [previous]
    if draw(st.integers(0, 3)) == 0 and None not in shape:
        # A branch from the input (or a node) merged back into the chain. (Not where the input has an
        # unknown length: check assumes unknown sizes that meet are equal, as Keras does; a stride
        # above makes them differ at run time, which no static check can see.)
        source = draw(st.sampled_from(["x", *nodes]))
        branch = {"type": "Dense", "units": draw(SMALL), "input": source}
        nodes["branch"] = branch
        merge = draw(st.sampled_from(["Concatenate", "Add", "Multiply"]))
        nodes["merged"] = {"type": merge, "input": [previous, "branch"]}
        outputs = ["merged"]
    if draw(st.integers(0, 4)) == 0:
        nodes["unused"] = {"type": "Dense", "units": draw(st.integers(1, 50)), "input": "x"}
    if draw(st.integers(0, 4)) == 0 and len(nodes) > 1:
        outputs.append(draw(st.sampled_from([n for n in nodes if n not in outputs and n != "unused"] or outputs)))
        outputs = list(dict.fromkeys(outputs))
    return {"graphspec": 1, "name": "drawn", "inputs": {"x": {"shape": shape, "dtype": dtype}}, "nodes": nodes,
            "outputs": outputs}


# --------------------------------------------------------------------------------------------
# The property
# --------------------------------------------------------------------------------------------

def _batch(spec: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for name, inp in spec["inputs"].items():
        shape = (BATCH, *[RUN_SIZE if d is None else d for d in inp["shape"]])
        if inp["dtype"].startswith("int"):
            arrays[name] = rng.integers(0, 2, size=shape).astype(inp["dtype"])
        else:
            arrays[name] = rng.random(shape, dtype="float32")
    return arrays


def _agrees(inferred_shape: tuple, actual: tuple) -> bool:
    """An inferred shape (batch first, None where unknown) fits a run-time shape."""
    if len(inferred_shape) != len(actual):
        return False
    return all(i is None or i == a for i, a in zip(inferred_shape[1:], actual[1:]))


def assert_sound(spec: dict) -> None:
    from graphspec.emit import emit

    text = json.dumps(spec)
    try:
        checked = check_text(text, file="drawn.yaml")
    except GraphspecError as error:
        assert error.diagnostics, "a refusal must say why"
        return
    try:
        model = emit(checked, compile=False)
    except GraphspecError as error:
        if any(info.outputs is None for info in checked.inferred.nodes.values()):
            # A layer without a shape rule left shapes to Keras, whose error is reported at a node's line.
            assert all(d.line is not None for d in error.diagnostics), [str(d) for d in error.diagnostics]
            return
        pytest.fail(f"check accepted a spec Keras does not build:\n{text}\n" + "\n".join(map(str, error.diagnostics)))
    try:
        produced = model(_batch(spec)["x"] if len(spec["inputs"]) == 1 else _batch(spec))
    except Exception as exc:  # noqa: BLE001 - any failure of an accepted spec is the finding
        pytest.fail(f"check accepted a spec whose model fails on a batch:\n{text}\n{type(exc).__name__}: {exc}")
    produced = produced if isinstance(produced, (list, tuple)) else [produced]
    symbolic = model.outputs
    inferred = checked.inferred
    for name, tensor, actual in zip(checked.graph.outputs, symbolic, produced):
        info = inferred.outputs[name]
        if info is None:
            continue  # left to Keras (a layer without a shape rule)
        assert info.shape == tuple(tensor.shape), f"{name}: check {info.shape} vs Keras {tuple(tensor.shape)}\n{text}"
        assert _agrees(info.shape, tuple(actual.shape)), \
            f"{name}: check {info.shape} vs run {tuple(actual.shape)}\n{text}"
        assert info.dtype == keras.backend.standardize_dtype(actual.dtype), \
            f"{name}: check {info.dtype} vs run {actual.dtype}\n{text}"
    total, trainable = inferred.total_params, inferred.trainable_params
    if total is not None:
        assert total == model.count_params(), f"params: check {total} vs Keras {model.count_params()}\n{text}"
        keras_trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
        assert trainable == keras_trainable, f"trainable: check {trainable} vs Keras {keras_trainable}\n{text}"


@pytest.mark.slow
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs())
def test_accepted_specs_build_run_and_match_inference(spec):
    assert_sound(spec)
