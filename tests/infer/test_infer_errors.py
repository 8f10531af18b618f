"""Shape and dtype problems found by the infer stage, located in the spec; and what Keras accepts, accepted.

Specs are checked with :func:`graphspec.pipeline.check_text` (pure Python: no Keras).
The assertions compare the structured diagnostics (code, path, line, column, hint).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from graphspec.errors import Diagnostic, InferError, render
from graphspec.pipeline import check_text


def spec(body: str, inputs: str = "x: {shape: [32, 32, 3]}", outputs: str | None = None) -> str:
    """A spec with the given inputs and nodes; outputs default to the last node."""
    body = textwrap.dedent(body).strip("\n")
    nodes = [line.split(":")[0].strip() for line in body.splitlines() if line.startswith("  ") is False and line]
    text = "graphspec: 1\nname: t\ninputs:\n"
    text += "".join(f"  {line.strip()}\n" for line in inputs.strip().splitlines())
    text += "nodes:\n" + textwrap.indent(body, "  ") + "\n"
    text += f"outputs: {outputs or '[' + nodes[-1] + ']'}\n"
    return text


def errors_of(text: str) -> list[Diagnostic]:
    with pytest.raises(InferError) as info:
        check_text(text, file="spec.yaml")
    return info.value.errors


def only_error(text: str) -> Diagnostic:
    errors = errors_of(text)
    assert len(errors) == 1, [render(e) for e in errors]
    return errors[0]


def position(text: str, line_text: str, token: str) -> tuple[int, int]:
    """1-based (line, column) of ``token`` on the line containing ``line_text``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line_text in line:
            return number, line.index(token, line.index(line_text)) + 1
    raise AssertionError(f"{line_text!r} not in spec")


# --------------------------------------------------------------------------------------------
# Incompatibilities
# --------------------------------------------------------------------------------------------

def test_concatenating_15x15_with_16x16_maps():
    text = spec("""
        a: {type: Conv2D, filters: 8, kernel_size: 3, strides: 2, input: x}
        b: {type: Conv2D, filters: 8, kernel_size: 2, strides: 2, input: x}
        cat: {type: Concatenate, input: [a, b]}
    """)
    error = only_error(text)
    assert error.code == "shape-mismatch"
    assert error.path == ("nodes", "cat", "input")
    assert (error.line, error.col) == position(text, "cat:", "[a, b]")
    assert "(None, 15, 15, 8)" in error.message and "(None, 16, 16, 8)" in error.message
    assert "node 'cat'" in error.message
    assert error.hint and "padding" in error.hint
    assert render(error).startswith(f"spec.yaml:{error.line}:{error.col}: error[shape-mismatch]: node 'cat'")


def test_adding_64_to_128_channels():
    text = spec("""
        a: {type: Conv2D, filters: 64, kernel_size: 3, padding: same, input: x}
        b: {type: Conv2D, filters: 128, kernel_size: 3, padding: same, input: x}
        add: {type: Add, input: [a, b]}
    """)
    error = only_error(text)
    assert error.code == "shape-mismatch"
    assert error.path == ("nodes", "add", "input")
    assert (error.line, error.col) == position(text, "add:", "[a, b]")
    assert "64" in error.message and "128" in error.message
    assert "(None, 32, 32, 64)" in error.message and "(None, 32, 32, 128)" in error.message
    assert "1x1 Conv" in error.hint and "128" in error.hint


def test_rank_2_tensor_into_conv2d():
    text = spec("""
        conv:
          type: Conv2D
          filters: 4
          kernel_size: 3
          input: v
    """, inputs="v: {shape: [10]}")
    error = only_error(text)
    assert error.code == "rank-mismatch"
    assert error.path == ("nodes", "conv", "input")
    assert (error.line, error.col) == position(text, "input: v", "v")
    assert "rank-4" in error.message and "(None, 10)" in error.message
    assert "Reshape" in error.hint


def test_rank_error_without_input_key_points_at_the_node_name():
    text = spec("""
        d: {type: Dense, units: 8}
        conv: {type: Conv2D, filters: 4, kernel_size: 3}
    """, inputs="v: {shape: [10]}")
    error = only_error(text)
    assert error.code == "rank-mismatch"
    assert (error.line, error.col) == position(text, "conv:", "conv")


def test_window_larger_than_the_input_blames_kernel_size():
    text = spec("""
        big:
          type: Conv2D
          filters: 4
          kernel_size: 40
          input: x
    """)
    error = only_error(text)
    assert error.code == "window-too-large"
    assert error.path == ("nodes", "big", "kernel_size")
    assert (error.line, error.col) == position(text, "kernel_size: 40", "40")
    assert "same" in error.hint


def test_pooling_window_too_large_after_downsampling():
    text = spec("""
        p1: {type: MaxPooling2D, pool_size: 8, input: x}
        p2: {type: MaxPooling2D, pool_size: 8}
    """)
    error = only_error(text)
    assert error.code == "window-too-large"
    assert error.path == ("nodes", "p2", "pool_size")
    assert "(None, 4, 4, 3)" in error.message


def test_argument_errors_point_at_the_argument():
    text = spec("""
        grp: {type: Conv2D, filters: 6, kernel_size: 3, groups: 4, input: x}
    """)
    error = only_error(text)
    assert error.code == "bad-argument"
    assert error.path == ("nodes", "grp", "groups")
    assert (error.line, error.col) == position(text, "grp:", "4, input")


def test_groups_not_dividing_input_channels():
    text = spec("""
        grp: {type: Conv2D, filters: 4, kernel_size: 3, groups: 2, input: x}
    """)
    error = only_error(text)
    assert error.code == "shape-mismatch" and error.path == ("nodes", "grp", "groups")
    assert "3 channels" in error.message


def test_reshape_to_a_different_size():
    text = spec("""
        flat: {type: Flatten, input: x}
        r: {type: Reshape, target_shape: [10, 10]}
    """)
    error = only_error(text)
    assert error.path == ("nodes", "r", "target_shape")
    assert "3072" in error.message and "100" in error.message
    assert (error.line, error.col) == position(text, "r:", "[10, 10]")


def test_dense_needs_a_known_feature_axis():
    text = spec("""
        d: {type: Dense, units: 4, input: s}
    """, inputs="s: {shape: [null]}")
    error = only_error(text)
    assert error.code == "shape-mismatch" and "last dimension" in error.message


def test_lstm_on_a_flat_vector():
    text = spec("""
        lstm: {type: LSTM, units: 8, input: v}
    """, inputs="v: {shape: [10]}")
    error = only_error(text)
    assert error.code == "rank-mismatch"
    assert "(batch, steps, features)" in error.message


def test_nested_layer_argument_is_located_inside_the_wrapper():
    text = spec("""
        bi:
          type: Bidirectional
          layer: {type: LSTM, units: 0}
          input: s
    """, inputs="s: {shape: [10, 4]}")
    error = only_error(text)
    assert error.code == "bad-argument"
    assert error.path == ("nodes", "bi", "layer", "units")
    assert (error.line, error.col) == position(text, "layer:", "0}")


def test_time_distributed_applies_the_inner_rule_per_step():
    text = spec("""
        td:
          type: TimeDistributed
          layer: {type: Conv2D, filters: 4, kernel_size: 3}
          input: s
    """, inputs="s: {shape: [10, 16]}")
    error = only_error(text)
    assert error.code == "rank-mismatch"
    assert "TimeDistributed(Conv2D)" in error.message and "(None, 16)" in error.message


def test_error_in_a_shared_layer_points_at_its_declaration():
    text = spec("""
        s1: {shared: proj, input: x}
    """).replace("nodes:", "layers:\n  proj: {type: Conv2D, filters: 4, kernel_size: 33}\nnodes:")
    error = only_error(text)
    assert error.path == ("layers", "proj", "kernel_size")
    assert (error.line, error.col) == position(text, "proj:", "33")
    assert "node 's1'" in error.message


def test_error_inside_a_sequential_block():
    text = spec("""
        block:
          sequential:
            - {type: Dense, units: 4}
            - {type: Reshape, target_shape: [5, 5]}
          input: v
    """, inputs="v: {shape: [10]}")
    error = only_error(text)
    assert error.path == ("nodes", "block", "sequential", 1, "target_shape")
    assert (error.line, error.col) == position(text, "Reshape", "[5, 5]")


def test_multi_head_attention_key_and_value_must_agree():
    text = spec("""
        mha:
          type: MultiHeadAttention
          num_heads: 2
          key_dim: 4
          input: {query: q, value: v, key: k}
    """, inputs="q: {shape: [6, 8]}\nv: {shape: [9, 8]}\nk: {shape: [7, 8]}")
    error = only_error(text)
    assert error.path == ("nodes", "mha", "input")
    assert "(None, 9, 8)" in error.message and "(None, 7, 8)" in error.message


def test_multi_head_attention_needs_query_and_value():
    text = spec("""
        mha: {type: MultiHeadAttention, num_heads: 2, key_dim: 4, input: {query: q}}
    """, inputs="q: {shape: [6, 8]}")
    error = only_error(text)
    assert error.code == "missing-call-argument"
    assert "value" in error.message


def test_initial_state_of_the_wrong_size():
    text = spec("""
        h0: {type: Dense, units: 5, input: v}
        gru: {type: GRU, units: 8, input: {sequences: s, initial_state: h0}}
    """, inputs="s: {shape: [10, 4]}\nv: {shape: [3]}")
    error = only_error(text)
    assert error.path == ("nodes", "gru", "input", "initial_state")
    assert (error.line, error.col) == position(text, "gru:", "h0}")
    assert "(None, 5)" in error.message and "units: 8" in error.hint


def test_output_index_beyond_the_outputs():
    text = spec("""
        lstm: {type: LSTM, units: 8, return_state: true, input: s}
        d: {type: Dense, units: 2, input: "lstm[3]"}
    """, inputs="s: {shape: [10, 4]}")
    error = only_error(text)
    assert error.code == "bad-output-index"
    assert "3 outputs" in error.message and error.hint == "outputs are numbered 0..2"


def test_all_problems_are_reported_together_without_cascades():
    text = spec("""
        a: {type: Conv2D, filters: 8, kernel_size: 3, input: x}
        b: {type: Conv2D, filters: 8, kernel_size: 2, input: x}
        cat: {type: Concatenate, input: [a, b]}
        after: {type: Dense, units: 2}
        v_conv: {type: Conv1D, filters: 2, kernel_size: 3, input: v}
        out: {type: Concatenate, input: [after, v_conv]}
    """, inputs="x: {shape: [32, 32, 3]}\nv: {shape: [10]}")
    errors = errors_of(text)
    assert [(e.path[1], e.code) for e in errors] == [("cat", "shape-mismatch"), ("v_conv", "rank-mismatch")]
    assert errors[0].line < errors[1].line


def test_strings_into_a_numeric_layer():
    text = spec("""
        flat: {type: Flatten, input: words}
        d: {type: Dense, units: 4}
    """, inputs="words: {shape: [3, 2], dtype: string}")
    error = only_error(text)
    assert error.code == "dtype-mismatch"
    assert (error.line, error.col) == position(text, "d:", "d")
    assert "(None, 6)" in error.message and "StringLookup" in error.hint


def test_dtype_is_carried_through_inference():
    text = spec("""
        emb: {type: Embedding, input_dim: 100, output_dim: 8, input: ids}
        flat: {type: Flatten}
        half: {type: Dense, units: 2, dtype: mixed_float16}
    """, inputs="ids: {shape: [12], dtype: int32}")
    checked = check_text(text)
    nodes = checked.inferred.nodes
    assert nodes["emb"].outputs.dtype == "float32"
    assert nodes["half"].outputs.dtype == "float16"
    assert checked.inferred.outputs["half"].shape == (None, 2)


# --------------------------------------------------------------------------------------------
# What Keras accepts is accepted
# --------------------------------------------------------------------------------------------

ACCEPTED = {
    "dense on the last axis of a 4-D map": ("""
        d: {type: Dense, units: 5, input: x}
    """, "x: {shape: [32, 32, 3]}", {"d": (None, 32, 32, 5)}),
    "broadcasting add": ("""
        a: {type: Dense, units: 1, input: x}
        add: {type: Add, input: [a, x]}
    """, "x: {shape: [4, 3]}", {"add": (None, 4, 3)}),
    "concatenating an unknown length": ("""
        cat: {type: Concatenate, axis: 1, input: [s, t]}
    """, "s: {shape: [null, 8]}\nt: {shape: [5, 8]}", {"cat": (None, None, 8)}),
    "lstm states by index": ("""
        lstm: {type: LSTM, units: 8, return_sequences: true, return_state: true, input: s}
        h: {type: Dense, units: 2, input: "lstm[1]"}
        c: {type: Dense, units: 3, input: "lstm[2]"}
        seq: {type: GlobalAveragePooling1D, input: "lstm[0]"}
        out: {type: Concatenate, input: [h, c, seq]}
    """, "s: {shape: [10, 4]}", {"out": (None, 13)}),
    "bidirectional with states": ("""
        bi:
          type: Bidirectional
          layer: {type: GRU, units: 6, return_state: true}
          input: s
        out: {type: Concatenate, input: ["bi[0]", "bi[1]", "bi[2]"]}
    """, "s: {shape: [10, 4]}", {"out": (None, 24)}),
    "self-attention by call argument": ("""
        mha: {type: MultiHeadAttention, num_heads: 2, key_dim: 4, input: {query: s, value: s}}
    """, "s: {shape: [10, 16]}", {"mha": (None, 10, 16)}),
    "time distributed dense": ("""
        td: {type: TimeDistributed, layer: {type: Dense, units: 3}, input: s}
    """, "s: {shape: [10, 16]}", {"td": (None, 10, 3)}),
    "same padding keeps any size": ("""
        c: {type: Conv2D, filters: 2, kernel_size: 7, padding: same, strides: 2, input: x}
    """, "x: {shape: [3, 5, 1]}", {"c": (None, 2, 3, 2)}),
    "channels first pooling": ("""
        p: {type: GlobalAveragePooling2D, data_format: channels_first, keepdims: true, input: x}
    """, "x: {shape: [3, 8, 8]}", {"p": (None, 3, 1, 1)}),
    "unknown spatial sizes": ("""
        c: {type: Conv2D, filters: 4, kernel_size: 3, input: x}
        p: {type: GlobalMaxPooling2D}
    """, "x: {shape: [null, null, 3]}", {"c": (None, None, None, 4), "p": (None, 4)}),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_keras_accepted_specs_pass(name: str):
    body, inputs, shapes = ACCEPTED[name]
    checked = check_text(spec(body, inputs=inputs))
    for node, shape in shapes.items():
        outputs = checked.inferred.nodes[node].outputs
        assert outputs is not None and outputs.shape == shape, (node, outputs)


def test_frozen_layers_count_as_non_trainable():
    text = spec("""
        d: {type: Dense, units: 4, trainable: false, input: v}
        bn: {type: BatchNormalization}
    """, inputs="v: {shape: [10]}")
    inferred = check_text(text).inferred
    assert inferred.nodes["d"].params == 0 and inferred.nodes["d"].non_trainable_params == 44
    assert inferred.trainable_params == 8 and inferred.total_params == 44 + 16


def test_check_does_not_import_keras():
    code = textwrap.dedent("""
        import sys
        from graphspec.pipeline import check_text
        text = '''graphspec: 1
        name: t
        inputs:
          x: {shape: [8, 8, 3]}
          s: {shape: [5, 3]}
        nodes:
          c: {type: Conv2D, filters: 2, kernel_size: 3, input: x}
          b: {type: Bidirectional, layer: {type: LSTM, units: 2}, input: s}
        outputs: [c, b]
        '''
        checked = check_text(text)
        assert checked.inferred.outputs['b'].shape == (None, 4)
        heavy = [m for m in ('keras', 'tensorflow') if m in sys.modules]
        assert not heavy, heavy
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_expected_trainable_params_count_frozen_layers_as_keras_does():
    body = """
        d: {type: Dense, units: 4, trainable: false, input: v}
        block:
          sequential: [{type: Dense, units: 3}, {type: BatchNormalization}]
          trainable: false
        out: {type: Dense, units: 2}
    """
    good = spec(body, inputs="v: {shape: [10]}") + "expect:\n  params: 44\n  trainable_params: 8\n"
    good = good.replace("params: 44", f"params: {44 + 15 + 12 + 8}")
    checked = check_text(good)
    assert (checked.inferred.total_params, checked.inferred.trainable_params) == (79, 8)
    bad = good.replace("trainable_params: 8", "trainable_params: 79")
    error = only_error(bad)
    assert error.code == "expect-failed" and error.path == ("expect", "trainable_params")
    assert "set trainable_params: 8" in error.hint


# --------------------------------------------------------------------------------------------
# Hints and totals bounded by the spec's size (issue 6, item 8)
# --------------------------------------------------------------------------------------------

def test_group_normalization_hint_is_fast_for_a_huge_channel_count():
    import time

    text = spec("""
        gn: {type: GroupNormalization, groups: 2, input: v}
    """, inputs="v: {shape: [2147483647]}")  # a prime: the loop would have run to 2**31
    started = time.perf_counter()
    error = only_error(text)
    assert time.perf_counter() - started < 2.0
    assert error.path == ("nodes", "gn", "groups")
    assert error.hint == "choose groups among 1, 2147483647"


def test_group_normalization_hint_lists_small_and_large_divisors():
    text = spec("""
        gn: {type: GroupNormalization, groups: 5, input: v}
    """, inputs="v: {shape: [4, 12]}")
    assert only_error(text).hint == "choose groups among 1, 2, 3, 4, 6, 12"


@pytest.mark.parametrize("output_shape", ["[[6], 4]", "[6, [4]]", "[6, 4.5]", "[6, true]", "[[]]"])
def test_einsum_output_shape_of_non_integers_is_a_located_error(output_shape):
    text = spec(f"""
        e: {{type: EinsumDense, equation: 'abc,cd->abd', output_shape: {output_shape}, input: v}}
    """, inputs="v: {shape: [6, 5]}")
    error = only_error(text)
    assert error.path == ("nodes", "e", "output_shape") and error.code == "bad-argument"


UNUSED_NODES = """graphspec: 1
name: t
inputs:
  v: {shape: [10]}
layers:
  s: {type: Dense, units: 3}
nodes:
  used: {type: Dense, units: 10, input: v}
  unused: {type: Dense, units: 100, input: v}
  unused_bn: {type: BatchNormalization, input: unused}
  s_unused: {shared: s, input: v}
  s_used: {shared: s, input: used}
  out: {type: Dense, units: 2, input: s_used}
outputs: [out]
"""


def test_unused_nodes_are_not_counted_in_the_totals():
    """Keras keeps only the layers that reach an output (a shared layer once); so does check's total."""
    checked = check_text(UNUSED_NODES)
    assert checked.inferred.total_params == 110 + 33 + 8
    assert checked.inferred.trainable_params == 110 + 33 + 8
    first_call_unused = UNUSED_NODES.replace("s_used: {shared: s, input: used}", "s_used: {type: Dense, units: 3, input: used}")
    assert check_text(first_call_unused).inferred.total_params == 110 + 33 + 8


@pytest.mark.parametrize("node, count", [
    ("{type: LSTM, units: 8, input: {sequences: s, initial_state: h0}}", 2),
    ("{type: RNN, cell: {type: LSTMCell, units: 8}, input: {sequences: s, initial_state: h0}}", 2),
    ("{type: Bidirectional, layer: {type: GRU, units: 8}, input: {sequences: s, initial_state: h0}}", 2),
    ("{type: Bidirectional, layer: {type: LSTM, units: 8}, input: {sequences: s, initial_state: h0}}", 4),
])
def test_one_initial_state_where_several_are_needed_is_refused(node, count):
    """Keras builds these, then the model fails on its first call (IndexError inside LSTM.call)."""
    text = spec(f"""
        h0: {{type: Dense, units: 8, input: v}}
        rnn: {node}
    """, inputs="s: {shape: [10, 4]}\nv: {shape: [3]}")
    error = only_error(text)
    assert error.code == "wrong-input-count" and error.path == ("nodes", "rnn", "input", "initial_state")
    assert f"starts from {count} state tensors" in error.message and "initial_state gives 1" in error.message
    assert (error.line, error.col) == position(text, "rnn:", "h0}")


def test_one_initial_state_of_a_conv_lstm_is_refused():
    text = spec("""
        h0: {type: Conv2D, filters: 2, kernel_size: 1, input: v}
        rnn: {type: ConvLSTM2D, filters: 2, kernel_size: 1, input: {sequences: s, initial_state: h0}}
    """, inputs="s: {shape: [3, 5, 5, 2]}\nv: {shape: [5, 5, 2]}")
    error = only_error(text)
    assert error.code == "wrong-input-count" and error.path == ("nodes", "rnn", "input", "initial_state")


@pytest.mark.parametrize("layer", ["GRU", "SimpleRNN"])
def test_one_initial_state_of_a_single_state_layer_is_accepted(layer):
    text = spec(f"""
        h0: {{type: Dense, units: 8, input: v}}
        rnn: {{type: {layer}, units: 8, input: {{sequences: s, initial_state: h0}}}}
    """, inputs="s: {shape: [10, 4]}\nv: {shape: [3]}")
    assert check_text(text).inferred.outputs["rnn"].shape == (None, 8)


# --------------------------------------------------------------------------------------------
# AdaptiveMaxPooling: TensorFlow's kernel kills the process (SIGFPE) for some sizes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("inputs, pooling", [
    ("v: {shape: [1, 6, 6, 2]}", "{type: AdaptiveMaxPooling3D, output_size: 2, input: v}"),   # an axis of 1
    ("v: {shape: [6, 6, 2]}", "{type: AdaptiveMaxPooling2D, output_size: [1, 2], input: v}"),   # output_size 1
    ("v: {shape: [5, 2]}", "{type: AdaptiveMaxPooling1D, output_size: 1, input: v}"),
    ("v: {shape: [null, 6, 2]}", "{type: AdaptiveMaxPooling2D, output_size: 2, input: v}"),   # unknown size
])
def test_adaptive_max_pooling_sizes_that_crash_tensorflow_are_refused(inputs, pooling):
    text = spec(f"""
        p: {pooling}
    """, inputs=inputs)
    error = only_error(text)
    assert error.code in ("window-too-large", "shape-mismatch") and error.path[:2] == ("nodes", "p")


@pytest.mark.parametrize("node", [
    "{type: AdaptiveMaxPooling3D, output_size: 2, input: u}",
    "{type: TimeDistributed, layer: {type: AdaptiveMaxPooling2D, output_size: 2}, input: u}",
    "{sequential: [{type: AdaptiveMaxPooling3D, output_size: 2}], input: u}",
])
def test_adaptive_max_pooling_after_a_layer_without_shape_rule_is_refused(node):
    """The input's shape is known only to Keras: check cannot prove the call safe, so it refuses it."""
    text = ("graphspec: 1\nname: t\ninputs:\n  v: {shape: [8, 8, 8, 2]}\nnodes:\n"
            "  u: {type: SpectralNormalization, layer: {type: Conv3D, filters: 2, kernel_size: 1}, input: v}\n"
            f"  p: {node}\noutputs: [p]\n")
    error = only_error(text)
    assert error.code == "unknown-input-shape" and error.path == ("nodes", "p", "input")
    assert "SIGFPE" in error.hint


def test_adaptive_max_pooling_after_a_rule_less_layer_inside_a_block_is_refused():
    text = ("graphspec: 1\nname: t\ninputs:\n  v: {shape: [8, 8, 8, 2]}\nnodes:\n"
            "  p: {sequential: [{type: SpectralNormalization, layer: {type: Conv3D, filters: 2, kernel_size: 1}},"
            " {type: AdaptiveMaxPooling3D, output_size: 2}], input: v}\noutputs: [p]\n")
    assert only_error(text).code == "unknown-input-shape"


def test_adaptive_pooling_of_safe_sizes_passes():
    text = spec("""
        p: {type: AdaptiveMaxPooling2D, output_size: [2, 3], input: v}
        q: {type: AdaptiveAveragePooling2D, output_size: 1, input: v}
    """, inputs="v: {shape: [3, 7, 2]}", outputs="[p, q]")
    inferred = check_text(text).inferred
    assert inferred.outputs["p"].shape == (None, 2, 3, 2) and inferred.outputs["q"].shape == (None, 1, 1, 2)


@pytest.mark.parametrize("layer", ["{type: Dropout, rate: 0.5}", "{type: Activation, activation: relu}",
                                   "{type: MaxPooling1D}", "{type: Conv1D, filters: 2, kernel_size: 1}"])
def test_integer_input_into_a_layer_that_keeps_integers_at_run_time_is_refused(layer):
    """Keras builds these on int32 with a float32 output, but the model keeps int32 (or fails) when it runs."""
    text = spec(f"""
        n: {layer[:-1]}, input: v}}
    """, inputs="v: {shape: [6, 4], dtype: int32}")
    error = only_error(text)
    assert error.code == "dtype-mismatch" and "Rescaling" in error.hint


def test_integer_input_into_a_casting_layer_is_float():
    text = spec("""
        d: {type: Dense, units: 3, input: v}
        r: {type: Rescaling, scale: 1.0, input: v}
        drop: {type: Dropout, rate: 0.5, input: r}
    """, inputs="v: {shape: [6, 4], dtype: int32}", outputs="[d, drop]")
    outputs = check_text(text).inferred.outputs
    assert outputs["d"].dtype == outputs["drop"].dtype == "float32"


@pytest.mark.parametrize("merge", ["Add", "Multiply", "Concatenate"])
def test_merging_a_known_size_with_an_unknown_one_is_refused(merge):
    """Keras builds it; the model runs only when the unknown length happens to equal the known one."""
    text = spec(f"""
        e: {{type: Dense, units: 3, input: s}}
        m: {{type: {merge}, input: [e, f]}}
    """, inputs="s: {shape: [null, 4]}\nf: {shape: [7, 3]}")
    error = only_error(text)
    assert error.code == "unknown-size-broadcast" and error.path == ("nodes", "m", "input")


@pytest.mark.parametrize("node", [
    "{type: Reshape, target_shape: LIST, input: v}",
    "{type: EinsumDense, equation: 'ab,bc->ac', output_shape: LIST, input: v}",
    "{type: MultiHeadAttention, num_heads: 1, key_dim: 2, output_shape: LIST, input: {query: s, value: s}}",
])
def test_shape_arguments_are_bounded(node):
    """A 150,000-entry shape would be multiplied out entry by entry: refused at once instead."""
    import time

    text = spec(f"""
        n: {node.replace("LIST", "[" + ", ".join(["2"] * 150_000) + "]")}
    """, inputs="v: {shape: [4]}\ns: {shape: [3, 4]}")
    started = time.perf_counter()
    error = only_error(text)
    assert error.path == ("nodes", "n", "target_shape" if "Reshape" in node else "output_shape")
    assert error.code == "bad-argument" and "at most 16 axes" in error.message
    assert time.perf_counter() - started < 10
