"""TextVectorization's rule against what the built model computes on real strings (not only Keras'
symbolic shapes, which differ for some modes: see the rule's docstring)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from graphspec.infer.tensor import TensorInfo
from graphspec.pipeline import check_text
from testkit import spec_text

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TEXT_SPEC = spec_text("""
    graphspec: 1
    name: text_model
    inputs:
      text: {shape: [1], dtype: string}
      plain: {shape: [], dtype: string}
    nodes:
      tokens: {type: TextVectorization, vocabulary: [the, cat, sat, on, mat], output_sequence_length: 6, input: text}
      emb: {type: Embedding, input_dim: 7, output_dim: 4}
      pooled: {type: GlobalAveragePooling1D}
      ragged_free: {type: TextVectorization, vocabulary: [the, cat], input: plain}
      weights: {type: TextVectorization, vocabulary: [the, cat, sat], output_mode: tf_idf,
                idf_weights: [0.5, 1.0, 2.0], input: plain}
      scores: {type: Dense, units: 2}
    outputs: [pooled, ragged_free, weights, scores]
    """)


def test_check_sees_past_text_vectorization():
    checked = check_text(TEXT_SPEC)
    nodes = checked.inferred.nodes
    assert nodes["tokens"].outputs == TensorInfo((None, 6), "int64")
    assert nodes["emb"].outputs == TensorInfo((None, 6, 4))
    assert nodes["ragged_free"].outputs == TensorInfo((None, None), "int64")
    assert nodes["weights"].outputs == TensorInfo((None, 4))   # 3 tokens and the out-of-vocabulary index
    assert nodes["scores"].outputs == TensorInfo((None, 2))
    assert checked.inferred.total_params == 7 * 4 + 4 * 2 + 2


@pytest.mark.parametrize("args, shape", [
    ({"output_mode": "multi_hot", "vocabulary": ["a"]}, [1]),    # Keras: float32, the run: int64
    ({"output_mode": "tf_idf", "vocabulary": ["a"], "idf_weights": [1.0]}, [1]),  # Keras: (batch, 1, 2)
    ({"split": None, "vocabulary": ["a"]}, []),
    ({"ragged": True, "vocabulary": ["a"]}, []),
])
def test_modes_whose_shapes_keras_misstates_are_left_unknown(args, shape):
    import json

    text = spec_text(f"""
        graphspec: 1
        name: t
        inputs: {{s: {{shape: {shape}, dtype: string}}}}
        nodes:
          tv: {json.dumps({"type": "TextVectorization", **args})}
        outputs: [tv]
        """)
    assert check_text(text).inferred.nodes["tv"].outputs is None


keras = pytest.importorskip("keras")


def test_the_built_model_computes_the_inferred_shapes_and_dtypes():
    from graphspec.emit import emit

    checked = check_text(TEXT_SPEC)
    model = emit(checked)
    import tensorflow as tf

    data = {"text": tf.constant([["the cat sat"], ["on the mat the cat"], ["dog"]]),
            "plain": tf.constant(["the cat", "cat cat the bird", "x"])}
    outputs = [np.asarray(v) for v in model(data)]
    for name, value in zip(["pooled", "ragged_free", "weights", "scores"], outputs):
        inferred = checked.inferred.outputs[name]
        assert value.ndim == inferred.rank, name
        assert all(d is None or d == v for d, v in zip(inferred.shape[1:], value.shape[1:])), name
        assert str(value.dtype) == inferred.dtype, name
    tokens = np.asarray(keras.Model(model.inputs, model.get_layer("tokens").output)(data))
    assert tokens.shape == (3, 6) and tokens.dtype == np.int64
    assert tokens[0].tolist() == [2, 3, 4, 0, 0, 0]   # 0 pads, 1 is out of vocabulary
    assert model.count_params() == checked.inferred.total_params
