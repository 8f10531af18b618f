"""Whole graphs: what ``graphspec check`` infers for every node equals the model Keras builds.

The per-rule harness (test_rules_vs_keras.py) checks layers one at a time; this checks the
graph walker on top of them (default inputs, output indices, shared layers, sequential
blocks, frozen layers, call arguments) on a spec that uses many rules at once, and on the
project's own specs.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from graphspec.pipeline import check_file, check_text

ROOT = Path(__file__).resolve().parents[2]

ZOO = """
graphspec: 1
name: zoo
inputs:
  image: {shape: [32, 32, 3]}
  tokens: {shape: [20], dtype: int32}
  series: {shape: [null, 6]}
layers:
  proj: {type: Dense, units: 16}
nodes:
  scale: {type: Rescaling, scale: 0.00392, input: image}
  aug: {type: RandomFlip}
  c1: {type: Conv2D, filters: 8, kernel_size: 3, strides: 2, padding: same, activation: relu}
  dw: {type: DepthwiseConv2D, kernel_size: 3, depth_multiplier: 2}
  sep: {type: SeparableConv2D, filters: 12, kernel_size: 3, padding: same}
  bn: {type: BatchNormalization, trainable: false}
  up: {type: Conv2DTranspose, filters: 16, kernel_size: 3, strides: 2, padding: same}
  crop: {type: Cropping2D, cropping: [[1, 2], [0, 3]]}
  pad: {type: ZeroPadding2D, padding: 1}
  pool: {type: AveragePooling2D, pool_size: 3, strides: 2}
  gn: {type: GroupNormalization, groups: 4}
  gap: {type: GlobalAveragePooling2D, keepdims: true}
  flat: {type: Flatten}
  img_vec: {shared: proj}
  emb: {type: Embedding, input_dim: 500, output_dim: 16, input: tokens}
  lstm: {type: LSTM, units: 16, return_sequences: true, return_state: true}
  att:
    type: MultiHeadAttention
    num_heads: 2
    key_dim: 8
    input: {query: "lstm[0]", value: emb}
    call: {return_attention_scores: true}
  ln: {type: LayerNormalization, input: "att[0]"}
  bi:
    type: Bidirectional
    layer: {type: GRU, units: 8, return_sequences: true}
    merge_mode: concat
  td: {type: TimeDistributed, layer: {type: Dense, units: 4}}
  td_vec: {type: GlobalAveragePooling1D}
  text_vec: {type: GlobalMaxPooling1D, input: bi}
  text_proj: {shared: proj}
  state: {type: Concatenate, input: ["lstm[1]", "lstm[2]"]}
  series_rnn: {type: SimpleRNN, units: 5, input: series}
  block:
    sequential:
      - {type: Dense, units: 12, activation: relu}
      - {type: Dropout, rate: 0.1}
      - {type: Dense, units: 16}
    trainable: false
    input: series_rnn
  summed: {type: Add, input: [img_vec, text_proj, block]}
  both: {type: Concatenate, input: [summed, state, td_vec]}
  dot: {type: Dot, axes: 1, normalize: true, input: [img_vec, text_proj]}
  head: {type: Dense, units: 3, activation: softmax, input: both}
  scores: {type: Activation, activation: linear, input: "att[1]"}
outputs: {label: head, similarity: dot, scores: scores}
"""


def _size(shape) -> int:
    return math.prod(int(d) for d in shape)


def compare_with_keras(checked) -> list:
    """Differences between the inferred graph and the model Keras builds from it."""
    from graphspec.emit import emit

    model = emit(checked, compile=False)
    differences = []
    for name, node in checked.graph.nodes.items():
        info = checked.inferred.nodes[name]
        if info.outputs is None:  # a saved model or a layer without a rule: Keras decides
            continue
        if node.kind == "op":  # a keras.ops call: an operation of the model named after its node, no weights
            layer = next(op for op in model.operations if op.name == name)
        else:
            layer = model.get_layer(checked.graph.nodes[name].layer_name)
        if node.kind != "shared":  # a shared layer's calls are checked through the nodes consuming them
            out = layer.output
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
            inferred = info.outputs if isinstance(info.outputs, list) else [info.outputs]
            if [(tuple(o.shape), o.dtype) for o in outs] != [(t.shape, t.dtype) for t in inferred]:
                differences.append((name, "outputs", [(tuple(o.shape), o.dtype) for o in outs], inferred))
        if info.counted and node.kind != "op":
            trainable = sum(_size(w.shape) for w in layer.trainable_weights)
            non_trainable = sum(_size(w.shape) for w in layer.non_trainable_weights)
            if (trainable, non_trainable) != (info.params, info.non_trainable_params):
                differences.append((name, "params", (trainable, non_trainable),
                                    (info.params, info.non_trainable_params)))
    if checked.inferred.total_params is not None:
        trainable = sum(_size(w.shape) for w in model.trainable_weights)
        if (model.count_params(), trainable) != (checked.inferred.total_params, checked.inferred.trainable_params):
            differences.append(("model", "params", (model.count_params(), trainable),
                                (checked.inferred.total_params, checked.inferred.trainable_params)))
    return differences


def test_zoo_spec_inferred_as_keras_builds_it():
    checked = check_text(ZOO, file="zoo.yaml")
    assert all(info.outputs is not None for info in checked.inferred.nodes.values())
    assert checked.inferred.outputs["scores"].shape == (None, 2, 20, 20)
    assert compare_with_keras(checked) == []


SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_project_specs_inferred_as_keras_builds_them(path: Path):
    checked = check_file(path)
    assert compare_with_keras(checked) == []
