"""Spec language 1.1: a list of tensors in one call argument (``initial_state: [h, c]``).

Schema, resolve, the canonical form, inference (the number of states against what the layer's
call expects) and emit (Keras receives a list). The error cases are golden fixtures
(``tests/fixtures/invalid/call_list_*``); the gallery's ``specs/seq2seq_lstm.yaml`` is compared
with the same model written by hand in ``tests/gallery``.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphspec.canonical import canonical_data, spec_hash
from graphspec.infer.tensor import TensorInfo
from graphspec.pipeline import check_text
from graphspec.resolve import TensorRef
from testkit import check_errors, codes, spec_text

SEQ2SEQ = spec_text("""
    graphspec: 1
    name: s2s
    inputs:
      source: {shape: [10, 8]}
      target: {shape: [null, 8]}
    nodes:
      encoder: {type: LSTM, units: 16, return_state: true, input: source}
      decoder: {type: LSTM, units: 16, return_sequences: true,
                input: {sequences: target, initial_state: ["encoder[1]", "encoder[2]"]}}
      out: {type: Dense, units: 3}
    outputs: [out]
    """)


def test_a_call_argument_takes_a_list_of_references_through_every_stage():
    checked = check_text(SEQ2SEQ)
    node = checked.graph.nodes["decoder"]
    assert node.inputs == {"sequences": TensorRef("target", None, ("nodes", "decoder", "input", "sequences")),
                           "initial_state": [TensorRef("encoder", i, ("nodes", "decoder", "input", "initial_state", k))
                                             for k, i in enumerate((1, 2))]}
    assert [str(r) for r in node.input_refs()] == ["target", "encoder[1]", "encoder[2]"]
    assert list(checked.graph.nodes) == ["encoder", "decoder", "out"]
    assert checked.inferred.nodes["decoder"].outputs == TensorInfo((None, None, 16))
    assert checked.inferred.total_params == 2 * 4 * 16 * (8 + 16 + 1) + 17 * 3
    assert canonical_data(checked.graph)["nodes"]["decoder"]["input"] == {
        "sequences": "target", "initial_state": ["encoder[1]", "encoder[2]"]}


def test_the_order_of_the_states_is_part_of_the_spec_hash():
    swapped = SEQ2SEQ.replace('["encoder[1]", "encoder[2]"]', '["encoder[2]", "encoder[1]"]')
    assert spec_hash(check_text(SEQ2SEQ).graph) != spec_hash(check_text(swapped).graph)


def test_a_state_list_must_not_come_before_its_producer_in_a_cycle():
    text = SEQ2SEQ.replace('initial_state: ["encoder[1]", "encoder[2]"]', 'initial_state: ["out", "out"]')
    text = text.replace("input: source}", "input: source}\n  ").replace("out: {type: Dense, units: 3}",
                                                                            "out: {type: Dense, units: 16}")
    error = check_errors(text)
    assert codes(error.diagnostics) == ["cycle"]


@pytest.mark.parametrize("layer, states, ok", [
    ("{type: GRU, units: 16}", '["h"]', True),                     # a list of one for one state
    ("{type: GRU, units: 16}", '["h", "c"]', False),
    ("{type: SimpleRNN, units: 16}", '["h", "c"]', False),
    ("{type: LSTM, units: 16}", '["h", "c"]', True),
    ("{type: LSTM, units: 16}", '["h", "c", "h"]', False),
    ("{type: Bidirectional, layer: {type: LSTM, units: 16}}", '["h", "c", "h", "c"]', True),
    ("{type: Bidirectional, layer: {type: LSTM, units: 16}}", '["h", "c"]', False),
    ("{type: Bidirectional, layer: {type: GRU, units: 16}}", '["h", "h"]', True),
    ("{type: RNN, cell: {type: LSTMCell, units: 16}}", '["h", "c"]', True),
    ("{type: RNN, cell: {type: LSTMCell, units: 16}}", '["h"]', False),
])
def test_the_number_of_states_is_checked_against_the_layers_call(layer, states, ok):
    text = spec_text(f"""
        graphspec: 1
        name: m
        inputs: {{seq: {{shape: [6, 4]}}, ctx: {{shape: [5]}}}}
        nodes:
          h: {{type: Dense, units: 16, input: ctx}}
          c: {{type: Dense, units: 16, input: ctx}}
          rnn: {{input: {{sequences: seq, initial_state: {states}}}}}
        outputs: [rnn]
        """).replace("rnn: {input", "rnn: {" + layer[1:-1] + ", input")
    if ok:
        assert check_text(text).inferred.nodes["rnn"].outputs is not None
    else:
        error = check_errors(text)
        assert codes(error.diagnostics) == ["wrong-input-count"]
        diagnostic = error.diagnostics[0]
        assert "initial_state gives" in diagnostic.message
        assert "not expressible" not in diagnostic.hint  # the old hint said lists could not be written


def test_the_hint_for_a_single_lstm_state_shows_the_list_form():
    error = check_errors(SEQ2SEQ.replace('["encoder[1]", "encoder[2]"]', '"encoder[1]"'))
    assert codes(error.diagnostics) == ["wrong-input-count"]
    assert '["enc[1]", "enc[2]"]' in error.diagnostics[0].hint


def test_a_list_where_the_call_takes_one_tensor_is_refused():
    text = SEQ2SEQ.replace("sequences: target,", 'sequences: [target, target],')
    error = check_errors(text)
    assert codes(error.diagnostics) == ["wrong-input-count"]
    assert "takes one tensor as 'sequences', got a list of 2" in error.diagnostics[0].message


def test_a_merge_layer_takes_its_list_by_call_argument_name():
    checked = check_text(spec_text("""
        graphspec: 1
        name: m
        inputs: {a: {shape: [3]}, b: {shape: [5]}}
        nodes:
          cat: {type: Concatenate, input: {inputs: [a, b]}}
        outputs: [cat]
        """))
    assert checked.inferred.nodes["cat"].outputs == TensorInfo((None, 8))


keras = pytest.importorskip("keras")


def test_keras_receives_the_list_and_the_model_runs():
    from graphspec.emit import emit

    text = SEQ2SEQ.replace("  out: {type: Dense, units: 3}", spec_text("""
          bi: {type: Bidirectional, layer: {type: GRU, units: 16},
               input: {sequences: target, initial_state: ["encoder[1]", "encoder[2]"]}}
          gru: {type: GRU, units: 16, input: {sequences: target, initial_state: ["encoder[2]"]}}
          cat: {type: Concatenate, input: {inputs: [bi, gru]}}
          out: {type: Dense, units: 3, input: decoder}
        """).rstrip("\n").replace("\n", "\n  ").join(["  ", ""])).replace("outputs: [out]", "outputs: [out, cat]")
    checked = check_text(text)
    model = emit(checked)
    assert model.count_params() == checked.inferred.total_params
    decoder = model.get_layer("decoder")
    assert [t._keras_history.operation.name for t in decoder._inbound_nodes[0].input_tensors] == \
        ["target", "encoder", "encoder"]
    x = {"source": np.ones((2, 10, 8), "float32"), "target": np.ones((2, 7, 8), "float32")}
    out, cat = model(x)
    assert tuple(out.shape) == (2, 7, 3) and tuple(cat.shape) == (2, 48)
    # Other initial states give other outputs: the states really reach the decoder.
    encoder = model.get_layer("encoder")
    before = np.asarray(out)
    encoder.set_weights([w + 0.5 for w in encoder.get_weights()])
    assert not np.allclose(np.asarray(model(x)[0]), before)
