"""Language 1.1: a block's output chosen by an expression of its parameters (``outputs: ["${...}"]``).

A block whose last node exists only under a condition (a residual ``Add`` when the shapes allow it) gives
back that node or the one before; ``when:`` alone cannot say it, since a left-out node with two inputs has
no single input to stand for it.
"""

from __future__ import annotations

import pytest

from graphspec.errors import GraphspecError
from graphspec.pipeline import check_text

SPEC = """\
graphspec: 1
name: tiny
blocks:
  maybe_residual:
    params:
      units: {type: int, doc: units of the dense layer}
      residual: {type: bool, default: false, doc: add the block's input to its output}
    nodes:
      dense: {type: Dense, units: "${units}", input: x}
      add: {type: Add, input: [x, dense], when: "${residual}"}
    outputs: ["${'add' if residual else 'dense'}"]
inputs:
  x: {shape: [8]}
nodes:
  a: {block: maybe_residual, units: 8, residual: true}
  b: {block: maybe_residual, units: 4}
  head: {type: Dense, units: 1}
outputs: [head]
"""


def test_block_output_expression_chooses_the_node_per_instance() -> None:
    checked = check_text(SPEC, "tiny.yaml")
    nodes = checked.graph.nodes
    assert list(nodes) == ["a_dense", "a_add", "b_dense", "head"]
    assert nodes["b_dense"].inputs.name == "a_add"   # a's output: its Add
    assert nodes["head"].inputs.name == "b_dense"    # b's output: its Dense (no Add)
    assert checked.inferred.total_params == (8 * 8 + 8) + (8 * 4 + 4) + (4 + 1)


@pytest.mark.parametrize("output, code, message", [
    ("${3}", "bad-reference", "output is 3, not a node name"),
    ("${'dense' if residual else 'nope'}", "unknown-reference", "refers to 'nope'"),
    ("${'dense' if units else 'add'}", "expression-type", ""),
])
def test_a_bad_output_expression_is_located_at_the_block_output(output: str, code: str, message: str) -> None:
    text = SPEC.replace("""["${'add' if residual else 'dense'}"]""", f'["{output}"]')
    with pytest.raises(GraphspecError) as info:
        check_text(text, "tiny.yaml")
    diagnostic = info.value.diagnostics[0]
    assert (diagnostic.code, diagnostic.line) == (code, 11)
    assert message in diagnostic.message
    assert any("in block 'maybe_residual' called at" in note for note in diagnostic.notes)


def test_a_left_out_node_passes_on_the_input_its_expression_chooses() -> None:
    """Regression: the input of a node left out by ``when:`` was taken as written, so an expression there
    was refused as a name (``"${'a' if skip else 'b'}" is not a valid name or reference``)."""
    text = """\
graphspec: 1
name: t
params: {skip: {type: bool, default: true, doc: leave c out}}
inputs: {x: {shape: [8]}}
nodes:
  a: {type: Dense, units: 4}
  b: {type: Dense, units: 3, input: x}
  c: {type: Dense, units: 2, input: "${'a' if skip else 'b'}", when: "${not skip}"}
  out: {type: Dense, units: 1, input: c}
outputs: [out]
"""
    assert check_text(text, "t.yaml").graph.nodes["out"].inputs.name == "a"
    kept = check_text(text.replace("default: true", "default: false"), "t.yaml").graph.nodes
    assert (kept["c"].inputs.name, kept["out"].inputs.name) == ("b", "c")
