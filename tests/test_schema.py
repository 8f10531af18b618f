"""Stage 2 — schema: unknown keys with did-you-mean, node forms, strictness, located diagnostics."""

from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphspec.errors import GraphspecError, SchemaError
from graphspec.loader import loads
from graphspec.pipeline import check_text
from graphspec.schema import LayerNode, ModelNode, SequentialNode, SharedCall, validate
from testkit import codes, diagnostics_of

H = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n"   # lines 1-4


def schema_diagnostics(text: str):
    _, diagnostics = diagnostics_of(validate, loads(text, file="s.yaml"))
    return diagnostics


def find(diagnostics, code):
    found = [d for d in diagnostics if d.code == code]
    assert found, (code, [(d.code, d.message) for d in diagnostics])
    return found[0]


# ---------------------------------------------------------------------------------------------
# Unknown keys and names, with "did you mean", pointing at the key
# ---------------------------------------------------------------------------------------------

TYPOS = [
    # (spec, code, line, col, hint)
    (H + "nodse:\n  d: {type: Dense, units: 4}\noutputs: [d]\n", "unknown-key", 5, 1, "did you mean 'nodes'?"),
    ("graphspec: 1\nname: m\ninputs:\n  x: {shape: [8], dtyp: int32}\nnodes:\n  d: {type: Dense, units: 4}\n"
     "outputs: [d]\n", "unknown-key", 4, 19, "did you mean 'dtype'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\ncompile:\n  optimiser: adam\n",
     "unknown-key", 9, 3, "did you mean 'optimizer'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\nexpect:\n  param: 3\n",
     "unknown-key", 9, 3, "did you mean 'params'?"),
    (H + "nodes:\n  d: {type: Dense, unit: 4}\noutputs: [d]\n", "unknown-argument", 6, 20, "did you mean 'units'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4, inputs: x}\noutputs: [d]\n",
     "unknown-argument", 6, 30, "did you mean 'input'?"),  # a reserved key's typo
    (H + "nodes:\n  d: {type: Dnese, units: 4}\noutputs: [d]\n", "unknown-layer-type", 6, 13, "did you mean 'Dense'?"),
    (H + "nodes:\n  d: {type: dense, units: 4}\noutputs: [d]\n", "unknown-layer-type", 6, 13, "did you mean 'Dense'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4, activation: rleu}\noutputs: [d]\n",
     "unknown-object", 6, 42, "did you mean 'relu'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4, kernel_initializer: {type: HeNormall}}\noutputs: [d]\n",
     "unknown-object", 6, 57, "did you mean 'HeNormal'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4, dtype: float23}\noutputs: [d]\n",
     "unknown-dtype", 6, 37, "did you mean 'float32'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\ncompile:\n  optimizer: {type: Adam, learning_rat: 0.1}\n",
     "unknown-argument", 9, 27, "did you mean 'learning_rate'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\ncompile:\n  optimizer: {type: Adamm}\n",
     "unknown-object", 9, 21, "did you mean 'Adam'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\ncompile:\n  loss: mse2\n",
     "unknown-object", 9, 9, "did you mean 'mse'?"),
    (H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\ncompile:\n  loss: mse\n  metrics: [acuracy]\n",
     "unknown-object", 10, 13, "did you mean 'accuracy'?"),
    (H + "nodes:\n  a: {type: MultiHeadAttention, num_heads: 2, key_dim: 4, input: {query: x, valeu: x}}\n"
     "outputs: [a]\n", "unknown-call-argument", 6, 77, "did you mean 'value'?"),
    (H + "nodes:\n  a: {type: MultiHeadAttention, num_heads: 2, key_dim: 4, input: {query: x, value: x},\n"
     "      call: {use_causal_mak: true}}\noutputs: [a]\n", "unknown-call-argument", 7, 14,
     "did you mean 'use_causal_mask'?"),
    (H + "nodes:\n  b: {type: Bidirectional, layer: {type: LSTM, unitz: 3}}\noutputs: [b]\n",
     "unknown-argument", 6, 48, "did you mean 'units'?"),
    (H + "layers:\n  p: {type: Dense, units: 4}\nnodes:\n  d: {shared: p, units: 4}\noutputs: [d]\n",
     "unknown-key", 8, 18, "allowed keys here: input, call, shared"),
    (H + "nodes:\n  d: {type: Dense, units: 4, name: foo}\noutputs: [d]\n", "name-argument", 6, 30, "rename the node"),
    (H + "nodes:\n  d: {type: Dense}\noutputs: [d]\n", "missing-argument", 6, 13, None),
]


@pytest.mark.parametrize("text, code, line, col, hint", TYPOS, ids=[f"{t[1]}-{i}" for i, t in enumerate(TYPOS)])
def test_mistakes_are_located_with_a_hint(text, code, line, col, hint):
    d = find(schema_diagnostics(text), code)
    assert (d.file, d.line, d.col) == ("s.yaml", line, col), d
    if hint is not None:
        assert d.hint is not None and hint in d.hint, d.hint
    assert d.severity == "error"


def test_every_problem_of_the_stage_is_reported_at_once_in_file_order():
    text = (H + "nodes:\n  d: {type: Dense, unit: 4, activation: rleu}\n  e: {type: Conv2DD}\n"
            "outputs: [d]\ncompile:\n  optimiser: adam\nexpect:\n  params: -1\n")
    diagnostics = schema_diagnostics(text)
    assert codes(diagnostics) == ["unknown-argument", "unknown-object", "unknown-layer-type",
                                  "unknown-key", "bad-value"]
    positions = [(d.line, d.col) for d in diagnostics]
    assert positions == sorted(positions)


def test_bad_node_name_points_at_the_key():
    d = find(schema_diagnostics(H + "nodes:\n  1d: {type: Dense, units: 4}\noutputs: [x]\n"), "bad-name")
    assert (d.line, d.col) == (6, 3)


def test_bad_output_reference_gives_one_diagnostic():
    diagnostics = schema_diagnostics(H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: ['d d']\n")
    assert codes(diagnostics) == ["bad-name"]


def test_empty_outputs_mapping_says_it_is_empty():
    d = find(schema_diagnostics(H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: {}\n"), "bad-value")
    assert "at least 1" in d.message


# ---------------------------------------------------------------------------------------------
# Node forms
# ---------------------------------------------------------------------------------------------

FORMS = H + """\
layers:
  proj: {type: Dense, units: 4}
nodes:
  a: {type: Dense, units: 4, input: x}
  b: {shared: proj, input: x}
  c: {sequential: [{type: Dense, units: 2}, {type: Dropout, rate: 0.5}], trainable: false}
  d: {model: encoder.keras, trainable: false, input: x}
  e: {type: Concatenate, input: [a, b, c, d]}
  f: {type: MultiHeadAttention, num_heads: 2, key_dim: 2, input: {query: e, value: e},
      call: {use_causal_mask: false}}
outputs: [f]
"""


def test_node_forms():
    spec = validate(loads(FORMS))
    nodes = spec.nodes
    assert isinstance(nodes["a"], LayerNode) and nodes["a"].type == "Dense" and nodes["a"].args == {"units": 4}
    assert isinstance(nodes["b"], SharedCall) and nodes["b"].shared == "proj"
    assert isinstance(nodes["c"], SequentialNode) and nodes["c"].trainable is False
    assert [layer.type for layer in nodes["c"].sequential] == ["Dense", "Dropout"]
    assert isinstance(nodes["d"], ModelNode) and nodes["d"].model == "encoder.keras"
    assert nodes["e"].input == ["a", "b", "c", "d"]
    assert nodes["f"].input == {"query": "e", "value": "e"} and nodes["f"].call == {"use_causal_mask": False}
    assert nodes["a"].args == {"units": 4}  # reserved keys are not constructor arguments
    assert spec.layers["proj"].args == {"units": 4}
    assert list(nodes) == ["a", "b", "c", "d", "e", "f"]  # file order is kept


@pytest.mark.parametrize("node", [
    "{units: 4}",                              # no form key
    "{type: Dense, shared: proj, units: 4}",   # two form keys
    "{sequential: [], model: m.keras}",
    "[1, 2]",
    "null",
    "Dense",
])
def test_a_node_needs_exactly_one_form(node):
    d = find(schema_diagnostics(H + f"layers:\n  proj: {{type: Dense, units: 4}}\nnodes:\n  d: {node}\n"
                                    "outputs: [d]\n"), "node-form")
    assert (d.line, d.col) == (8, 6)
    assert "'d'" in d.message and "exactly one" in d.message


@pytest.mark.parametrize("node, key", [
    ("{shared: proj, units: 4}", "units"),
    ("{sequential: [{type: Dense, units: 2}], units: 4}", "units"),
    ("{model: m.keras, units: 4}", "units"),
])
def test_non_layer_forms_take_no_layer_arguments(node, key):
    d = find(schema_diagnostics(H + f"layers:\n  proj: {{type: Dense, units: 4}}\nnodes:\n  d: {node}\n"
                                    "outputs: [d]\n"), "unknown-key")
    assert f"'{key}'" in d.message and d.line == 8


# ---------------------------------------------------------------------------------------------
# Strictness: no coercion of YAML types
# ---------------------------------------------------------------------------------------------

STRICT = [
    ("inputs:\n  x: {shape: '8'}\n", "bad-type", ("inputs", "x", "shape")),
    ("inputs:\n  x: {shape: [8.0]}\n", "bad-type", ("inputs", "x", "shape", 0)),
    ("inputs:\n  x: {shape: [true]}\n", "bad-type", ("inputs", "x", "shape", 0)),
    ("inputs:\n  x: {shape: [0]}\n", "bad-value", ("inputs", "x", "shape", 0)),
    ("inputs:\n  x: {shape: [8], sparse: 'yes'}\n", "bad-type", ("inputs", "x", "sparse")),
    ("inputs:\n  x: {shape: [8], sparse: 1}\n", "bad-type", ("inputs", "x", "sparse")),
    ("inputs:\n  x: {shape: [8], dtype: float33}\n", "unknown-dtype", ("inputs", "x", "dtype")),
    ("inputs:\n  x: {shape: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n", "bad-value", ("inputs", "x", "shape")),
]


@pytest.mark.parametrize("inputs, code, path", STRICT, ids=[s[0].split("\n")[1].strip() for s in STRICT])
def test_strict_types_in_inputs(inputs, code, path):
    text = "graphspec: 1\nname: m\n" + inputs + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\n"
    d = find(schema_diagnostics(text), code)
    assert d.path == path and d.line == 4


@pytest.mark.parametrize("header, code, line", [
    ("graphspec: 2\nname: m\n", "bad-value", 1),
    ("graphspec: '1'\nname: m\n", "bad-value", 1),
    ("graphspec: 1.0\nname: m\n", "bad-value", 1),
    ("graphspec: true\nname: m\n", "bad-value", 1),
    ("graphspec: 1\nname: my model\n", "bad-name", 2),
    ("graphspec: 1\nname: 1st\n", "bad-name", 2),
    ("graphspec: 1\nname: 12\n", "bad-type", 2),
    ("graphspec: 1\nname: m\ndescription: 12\n", "bad-type", 3),
])
def test_strict_header(header, code, line):
    text = header + "inputs:\n  x: {shape: [8]}\nnodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\n"
    d = find(schema_diagnostics(text), code)
    assert d.line == line
    if line == 1:
        assert "graphspec: 1" in d.message


@pytest.mark.parametrize("node, code", [
    ("{type: Dense, units: 4, use_bias: 'true'}", "bad-argument-type"),
    ("{type: Dense, units: 4, use_bias: 1}", "bad-argument-type"),
    ("{type: Dense, units: 4, trainable: 'no'}", "bad-argument-type"),
    ("{type: Dense, units: 4, input: 5}", "bad-type"),
    ("{type: Dense, units: 4, input: 'x y'}", "bad-name"),
    ("{type: Dense, units: 4, call: [1]}", "bad-type"),
    ("{type: 12}", "bad-type"),
    ("{sequential: [{type: Dense, units: 2}], trainable: 'no'}", "bad-type"),
    ("{sequential: []}", "bad-value"),
    ("{model: ''}", "bad-value"),
    ("{type: Dense, units: 4, kernel_initializer: 12}", "bad-object"),
    ("{type: Dense, units: 4, layer: {type: Dense}}", "unknown-argument"),
    ("{type: Bidirectional, layer: LSTM}", "bad-argument"),
])
def test_strict_types_in_nodes(node, code):
    d = find(schema_diagnostics(H + f"nodes:\n  d: {node}\noutputs: [d]\n"), code)
    assert d.line == 6 and d.col is not None


@pytest.mark.parametrize("section, code", [
    ("compile:\n  steps_per_execution: 0\n", "bad-value"),
    ("compile:\n  steps_per_execution: '2'\n", "bad-type"),
    ("compile:\n  loss_weights: {d: '1'}\n", "bad-type"),
    ("compile:\n  optimizer: 12\n", "bad-type"),
    ("expect:\n  params: -1\n", "bad-value"),
    ("expect:\n  params: 1.5\n", "bad-type"),
    ("expect:\n  output_shapes: {d: 4}\n", "bad-type"),
])
def test_strict_types_in_compile_and_expect(section, code):
    d = find(schema_diagnostics(H + "nodes:\n  d: {type: Dense, units: 4}\noutputs: [d]\n" + section), code)
    assert d.line == 9


@pytest.mark.parametrize("text, code", [
    ("- a\n- b\n", "not-a-mapping"),
    ("just a string\n", "not-a-mapping"),
    ("name: m\ninputs:\n  x: {shape: [8]}\noutputs: [d]\n", "missing-key"),
])
def test_whole_spec_problems_are_located_at_the_top(text, code):
    diagnostics = schema_diagnostics(text)
    assert code in codes(diagnostics)
    assert all((d.line, d.col) == (1, 1) for d in diagnostics if d.code == code)


def test_empty_file_is_located():
    d = find(schema_diagnostics(""), "not-a-mapping")
    assert (d.line, d.col) == (1, 1)


def test_required_argument_of_the_wrong_type_is_caught_by_check():
    with pytest.raises(GraphspecError):
        check_text(H + "nodes:\n  d: {type: Dropout, rate: '0.5'}\noutputs: [d]\n")


def test_missing_keys_are_named():
    diagnostics = schema_diagnostics("name: m\ninputs:\n  x: {dtype: int32}\noutputs: [d]\n")
    messages = {d.message for d in diagnostics if d.code == "missing-key"}
    assert messages == {"'graphspec' is required", "'nodes' is required", "'shape' is required in inputs.x"}
    shape = next(d for d in diagnostics if "shape" in d.message)
    assert shape.line == 3  # at the input that lacks it


# ---------------------------------------------------------------------------------------------
# Property: whatever is broken, and wherever, every diagnostic is located and nothing crashes
# ---------------------------------------------------------------------------------------------

BASE_TEXT = (FORMS.replace("  d: {model: encoder.keras, trainable: false, input: x}\n", "")
             .replace("[a, b, c, d]", "[a, b, c]").replace("shape: [8]", "shape: [4, 8]")
             + "compile:\n  optimizer: {type: Adam, learning_rate: 0.001}\n  loss: mse\n  metrics: [mae]\n"
             + "expect:\n  params: 264\n")
BASE = yaml.safe_load(BASE_TEXT)


def test_the_base_of_the_mutations_is_valid():
    assert check_text(BASE_TEXT).warnings == []

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.sampled_from(["x", "a", "Dense", "relu", "", "1d", "a[1]", "float32", "same", "Lambda", "mse"])
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "units", "input", "shared", "call", "name", "shape", "dtype", "zz"])
        | st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def _paths(data, path=()):
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _paths(value, path + (i,))


@st.composite
def mutated_specs(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "add", "delete"]))
        if not path:
            continue
        if action == "replace":
            parent[path[-1]] = draw(junk)
        elif action == "delete":
            del parent[path[-1]]
        else:
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=8))] = draw(junk)
            elif isinstance(target, list):
                target.append(draw(junk))
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_specs())
def test_every_diagnostic_is_located_and_nothing_crashes(data):
    text = yaml.safe_dump(data, sort_keys=False)
    try:
        check_text(text, file="f.yaml")
    except GraphspecError as error:
        assert error.diagnostics
        for d in error.diagnostics:
            assert d.file == "f.yaml" and d.line is not None and d.col is not None, (d, text)
            assert d.message and "Traceback" not in d.message


def test_schema_error_is_a_graphspec_error():
    error, _ = diagnostics_of(validate, loads(H + "nodes: {}\noutputs: [d]\n"))
    assert isinstance(error, SchemaError) and error.stage == "schema"


def test_unknown_key_in_a_train_callback_names_the_key_at_its_place():
    text = (H + "nodes:\n  d: {type: Dense, units: 2}\noutputs: [d]\ntrain:\n  data: {builtin: digits}\n"
            "  callbacks:\n    best_model: {monitr: val_loss}\n    early_stopping: {patiense: 3}\n")
    diagnostics = schema_diagnostics(text)
    found = [(d.code, d.message, d.line, d.col, d.hint) for d in diagnostics]
    assert ("unknown-key", "unknown key 'monitr' in train.callbacks.best_model", 11, 18,
            "did you mean 'monitor'?") in found, found
    assert ("unknown-key", "unknown key 'patiense' in train.callbacks.early_stopping", 12, 22,
            "did you mean 'patience'?") in found, found
    assert not any("Spec" in d.message for d in diagnostics)
