"""Stage 3 — resolve: references, duplicate names, cycles, unused parts, default inputs, scale."""

from __future__ import annotations

import gc
import sys
import time

import pytest

from graphspec.errors import ResolveError
from graphspec.loader import loads
from graphspec.resolve import TensorRef, resolve
from graphspec.schema import validate
from testkit import assert_grows_linearly, codes, diagnostics_of

H = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n"   # lines 1-4


def resolved(text: str):
    loaded = loads(text, file="r.yaml")
    return resolve(validate(loaded), loaded.source)


def resolve_diagnostics(text: str):
    loaded = loads(text, file="r.yaml")
    spec = validate(loaded)
    error, diagnostics = diagnostics_of(resolve, spec, loaded.source)
    assert isinstance(error, ResolveError)
    return diagnostics


# ---------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------

def test_unknown_references_everywhere_with_hints():
    diagnostics = resolve_diagnostics(
        H + "nodes:\n"
        "  dense1: {type: Dense, units: 4}\n"
        "  d2: {type: Dense, units: 4, input: dense2}\n"
        "  d3: {type: Concatenate, input: [dense1, d22]}\n"
        "  d4: {type: MultiHeadAttention, num_heads: 1, key_dim: 2, input: {query: d3, value: d33}}\n"
        "outputs: [d44]\n")
    assert codes(diagnostics) == ["unknown-reference"] * 4
    where = [(d.line, d.col, d.path) for d in diagnostics]
    assert where == [(7, 38, ("nodes", "d2", "input")),
                     (8, 43, ("nodes", "d3", "input", 1)),
                     (9, 86, ("nodes", "d4", "input", "value")),
                     (10, 11, ("outputs", 0))]
    assert [d.hint for d in diagnostics] == ["did you mean 'dense1'?", "did you mean 'd2'?", "did you mean 'd3'?",
                                             "did you mean 'd4'?"]
    assert "'dense2'" in diagnostics[0].message and "node 'd2'" in diagnostics[0].message
    assert "output 'd44'" in diagnostics[3].message


def test_unknown_reference_without_a_close_name_lists_the_known_ones():
    d = resolve_diagnostics(H + "nodes:\n  d1: {type: Dense, units: 4, input: zzz}\noutputs: [d1]\n")[0]
    assert d.code == "unknown-reference" and d.hint == "known names: x, d1"


def test_indexed_references():
    graph = resolved(H + "nodes:\n  l: {type: Dense, units: 4}\n  m: {type: Dense, units: 4, input: 'l[0]'}\n"
                         "outputs: ['m', 'l[0]']\n")
    assert graph.nodes["m"].inputs == TensorRef("l", 0, ("nodes", "m", "input"))
    assert str(graph.nodes["m"].inputs) == "l[0]"
    assert list(graph.outputs) == ["m", "l_0"]
    d = resolve_diagnostics(H + "nodes:\n  d1: {type: Dense, units: 4, input: 'x[1]'}\noutputs: [d1]\n")[0]
    assert d.code == "bad-reference" and (d.line, d.col) == (6, 38) and d.hint == "use 'x'"


def test_output_problems():
    diagnostics = resolve_diagnostics(H + "nodes:\n  d1: {type: Dense, units: 4}\noutputs: [d1, d1, x]\n")
    assert [(d.code, d.line, d.col) for d in diagnostics] == [("duplicate-output", 7, 15), ("output-is-input", 7, 19)]
    diagnostics = resolve_diagnostics(
        H + "nodes:\n  d1: {type: Dense, units: 4}\noutputs: {score: d1}\n"
        "compile:\n  loss: {scor: mse}\n  loss_weights: [1.0, 2.0]\n  metrics: {score: [mae], other: mae}\n"
        "expect:\n  output_shapes: {scores: [4]}\n")
    assert [(d.code, d.line) for d in diagnostics] == [
        ("unknown-output", 9), ("bad-loss-weights", 10), ("unknown-output", 11), ("unknown-output", 13)]
    assert diagnostics[0].hint == "did you mean 'score'?"
    assert (diagnostics[0].line, diagnostics[0].col) == (9, 10)  # at the key


# ---------------------------------------------------------------------------------------------
# Names must be unique across inputs, shared layers and nodes
# ---------------------------------------------------------------------------------------------

def test_duplicate_names_across_sections_are_all_reported_at_their_keys():
    diagnostics = resolve_diagnostics(
        "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n  y: {shape: [8]}\n"
        "layers:\n  y: {type: Dense, units: 3}\n  proj: {type: Dense, units: 3}\n"
        "nodes:\n  x: {type: Dense, units: 4, input: y}\n  proj: {shared: proj, input: x}\n"
        "  ok: {type: Dense, units: 2}\noutputs: [ok]\n")
    assert [(d.code, d.line, d.col) for d in diagnostics] == [
        ("duplicate-name", 7, 3), ("duplicate-name", 10, 3), ("duplicate-name", 11, 3)]
    messages = [d.message for d in diagnostics]
    assert messages == ["'y' is both an input and a shared layer", "'x' is both an input and a node",
                        "'proj' is both a shared layer and a node"]


def test_a_name_clashing_with_an_input_and_a_shared_layer_is_reported_twice():
    diagnostics = resolve_diagnostics(H + "layers:\n  x: {type: Dense, units: 3}\n"
                                          "nodes:\n  x: {type: Dense, units: 4}\noutputs: [x]\n")
    assert codes(diagnostics).count("duplicate-name") == 3


def test_unknown_shared_layer():
    d = resolve_diagnostics(H + "layers:\n  proj: {type: Dense, units: 3}\n"
                                "nodes:\n  d: {shared: prj, input: x}\noutputs: [d]\n")[0]
    assert d.code == "unknown-shared-layer" and d.hint == "did you mean 'proj'?" and (d.line, d.col) == (8, 15)


# ---------------------------------------------------------------------------------------------
# Cycles
# ---------------------------------------------------------------------------------------------

def test_cycle_message_names_the_cycle_in_data_flow_order():
    d = resolve_diagnostics(
        H + "nodes:\n"
        "  s: {type: Dense, units: 4, input: x}\n"
        "  b: {type: Dense, units: 4, input: a}\n"
        "  c: {type: Dense, units: 4, input: b}\n"
        "  a: {type: Dense, units: 4, input: c}\n"
        "  after: {type: Dense, units: 4, input: c}\n"
        "outputs: [after]\n")[0]
    assert d.code == "cycle"
    # starts at the first cycle member in the file; 'b -> c' means c takes b's output
    assert d.message == "the graph has a cycle: b -> c -> a -> b"
    assert (d.line, d.col, d.path) == (7, 37, ("nodes", "b", "input"))
    assert d.message.split(": ", 1)[1].split(" -> ") == ["b", "c", "a", "b"]  # not 's', not 'after'


def test_self_loop():
    d = resolve_diagnostics(H + "nodes:\n  a: {type: Dense, units: 4, input: a}\noutputs: [a]\n")[0]
    assert d.message == "the graph has a cycle: a -> a"


def test_cycle_through_a_default_input_points_at_the_explicit_one():
    d = resolve_diagnostics(H + "nodes:\n  a: {type: Add, input: [x, c]}\n  b: {type: Dense, units: 8}\n"
                                "  c: {type: Dense, units: 8}\noutputs: [c]\n")[0]
    assert d.message == "the graph has a cycle: a -> b -> c -> a"
    assert d.path == ("nodes", "a", "input") and d.line == 6


def test_shared_layer_called_twice_is_not_a_cycle():
    graph = resolved(H + "layers:\n  proj: {type: Dense, units: 8}\n"
                         "nodes:\n  p1: {shared: proj, input: x}\n  p2: {shared: proj, input: p1}\n"
                         "outputs: [p2]\n")
    assert [n.layer_name for n in graph.nodes.values()] == ["proj", "proj"]


# ---------------------------------------------------------------------------------------------
# Default inputs, order, unused parts
# ---------------------------------------------------------------------------------------------

def test_default_input_is_the_previous_node_in_the_file():
    graph = resolved(H + "nodes:\n"
                         "  d2: {type: Dense, units: 4, input: d1}\n"
                         "  d1: {type: Dense, units: 4, input: x}\n"
                         "  d0: {type: Dense, units: 4}\n"
                         "outputs: [d2, d0]\n")
    assert str(graph.nodes["d0"].inputs) == "d1"      # previous in the file, not in the sorted order
    assert list(graph.nodes) == ["d1", "d2", "d0"]    # topological, otherwise file order
    assert graph.warnings == []


def test_first_node_takes_the_only_input():
    graph = resolved(H + "nodes:\n  d1: {type: Dense, units: 4}\n  d2: {type: Dense, units: 2}\noutputs: [d2]\n")
    assert str(graph.nodes["d1"].inputs) == "x" and str(graph.nodes["d2"].inputs) == "d1"


def test_first_node_with_several_inputs_must_say_which():
    d = resolve_diagnostics("graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n  y: {shape: [8]}\n"
                            "nodes:\n  d1: {type: Dense, units: 4}\noutputs: [d1]\n")[0]
    assert d.code == "missing-input" and d.line == 7 and "x, y" in d.hint


def test_unused_parts_are_warnings_at_their_keys():
    graph = resolved("graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n  y: {shape: [8]}\n"
                     "layers:\n  p: {type: Dense, units: 3}\n"
                     "nodes:\n  d1: {type: Dense, units: 4, input: x}\n  d2: {type: Dense, units: 4}\n"
                     "  d3: {type: Dense, units: 4, input: x}\noutputs: [d3]\n")
    assert [(d.code, d.severity, d.line, d.col) for d in graph.warnings] == [
        ("unused-input", "warning", 5, 3), ("unused-shared-layer", "warning", 7, 3),
        ("unused-node", "warning", 9, 3), ("unused-node", "warning", 10, 3)]
    assert "'y'" in graph.warnings[0].message and "'d1'" in graph.warnings[2].message


def test_every_resolve_problem_is_reported_at_once():
    diagnostics = resolve_diagnostics(
        H + "layers:\n  x: {type: Dense, units: 3}\n"
        "nodes:\n  d1: {type: Dense, units: 4, input: nope}\n  d2: {shared: nope}\noutputs: [d1, d1]\n")
    assert sorted(set(codes(diagnostics))) == ["duplicate-name", "duplicate-output", "unknown-reference",
                                               "unknown-shared-layer"]
    assert [d.line for d in diagnostics] == sorted(d.line for d in diagnostics)


# ---------------------------------------------------------------------------------------------
# Scale: 10,000 nodes, no recursion
# ---------------------------------------------------------------------------------------------

N = 10_000


def chain(n: int, reverse: bool = False) -> str:
    """n Dense nodes in a chain; ``reverse`` writes each node before its producer (worst case for the sort)."""
    lines = [H, "nodes:\n"]
    if reverse:
        for i in range(n - 1):
            lines.append(f"  n{i}: {{type: Dense, units: 4, input: n{i + 1}}}\n")
        lines.append(f"  n{n - 1}: {{type: Dense, units: 4, input: x}}\n")
        lines.append("outputs: [n0]\n")
    else:
        lines.append("  n0: {type: Dense, units: 4, input: x}\n")
        lines.extend(f"  n{i}: {{type: Dense, units: 4}}\n" for i in range(1, n))
        lines.append(f"outputs: [n{n - 1}]\n")
    return "".join(lines)


def wide(n: int) -> str:
    """n Dense nodes on the input, all concatenated by one node."""
    lines = [H, "nodes:\n"]
    lines.extend(f"  w{i}: {{type: Dense, units: 2, input: x}}\n" for i in range(n))
    lines.append("  cat: {type: Concatenate, input: [" + ", ".join(f"w{i}" for i in range(n)) + "]}\n")
    lines.append("outputs: [cat]\n")
    return "".join(lines)


def cycle(n: int) -> str:
    lines = [H, "nodes:\n", f"  n0: {{type: Add, input: [x, n{n - 1}]}}\n"]
    lines.extend(f"  n{i}: {{type: Dense, units: 8}}\n" for i in range(1, n))
    lines.append(f"outputs: [n{n - 1}]\n")
    return "".join(lines)


def resolved(text: str):
    loaded = loads(text)
    spec = validate(loaded)
    try:
        return resolve(spec, loaded.source)
    except ResolveError as error:
        return error


def resolve_seconds(make_text):
    """``n -> seconds`` of one resolve of ``make_text(n)`` (loaded and validated once per size, untimed)."""
    validated = {}

    def seconds_at(n: int) -> float:
        if n not in validated:
            loaded = loads(make_text(n))
            validated[n] = validate(loaded), loaded
        spec, loaded = validated[n]
        gc.collect()
        gc.disable()  # a full collection scans every live object: its cost grows with the heap, not the walk
        start = time.perf_counter()
        try:
            resolve(spec, loaded.source)
        except ResolveError:
            pass
        finally:
            seconds = time.perf_counter() - start
            gc.enable()
        return seconds
    return seconds_at


@pytest.fixture
def shallow_recursion():
    """A recursion limit far below 10,000, so any recursive walk fails loudly."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    yield
    sys.setrecursionlimit(old)


@pytest.mark.parametrize("reverse", [False, True], ids=["file-order", "reverse-order"])
def test_ten_thousand_node_chain(reverse, shallow_recursion):
    graph = resolved(chain(N, reverse))
    assert len(graph.nodes) == N
    order = list(graph.nodes)
    assert order[0] == (f"n{N - 1}" if reverse else "n0")
    assert graph.warnings == []
    assert_grows_linearly(resolve_seconds(lambda n: chain(n, reverse)), N // 10, N)


def test_ten_thousand_node_wide_graph(shallow_recursion):
    graph = resolved(wide(N))
    assert len(graph.nodes) == N + 1 and list(graph.nodes)[-1] == "cat"
    assert len(graph.nodes["cat"].inputs) == N
    assert_grows_linearly(resolve_seconds(wide), N // 10, N)


def test_ten_thousand_node_cycle(shallow_recursion):
    error = resolved(cycle(N))
    assert isinstance(error, ResolveError)
    (d,) = error.diagnostics
    assert d.code == "cycle" and d.message.startswith("the graph has a cycle: n0 -> n1 -> n2 -> ")
    assert d.message.endswith(f"n{N - 1} -> n0")
    assert_grows_linearly(resolve_seconds(cycle), N // 10, N)


def test_did_you_mean_for_thousands_of_broken_references_is_not_quadratic():
    """3,000 broken references among 3,000 nodes: every one reported, hints bounded in total work."""
    def broken(n: int) -> str:
        nodes = "".join(f"  node_{i}: {{type: Dense, units: 4, input: nod_{i}x}}\n" for i in range(n))
        return H + "nodes:\n" + nodes + "outputs: [node_0]\n"

    diagnostics = resolve_diagnostics(broken(3000))
    assert codes(diagnostics) == ["unknown-reference"] * 3000
    assert diagnostics[0].hint == "did you mean 'node_0'?"
    assert all(d.hint and d.line for d in diagnostics)
    assert_grows_linearly(resolve_seconds(broken), 300, 3000)
