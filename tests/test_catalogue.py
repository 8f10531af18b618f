"""The Keras catalogue: no drift from the installed Keras, reserved keys, the deny-list."""

from __future__ import annotations

import pytest

from graphspec.catalogue import CATALOGUE_PATH, catalogue
from graphspec.catalogue.generate import DENIED_LAYERS, FILE_ARGUMENTS
from graphspec.errors import SchemaError
from graphspec.pipeline import check_text
from graphspec.schema import RESERVED_NODE_KEYS

CAT = catalogue()
LAYER_ENTRIES = {name: entry for name, entry in CAT.data["layers"].items() if "args" in entry}
DENIED = sorted(name for name, entry in CAT.data["layers"].items() if CAT.denied_reason(name))

# Constructor arguments that hand Keras code or a path to open: only denied layers may have them.
CODE_OR_FILE_ARGUMENTS = {"function", "module", "filepath", "call_fn", "init_fn", "call_endpoint",
                          "call_training_endpoint", "arguments"}


@pytest.mark.slow
def test_checked_in_catalogue_matches_the_installed_keras():
    from graphspec.catalogue.generate import build_catalogue, render

    fresh = render(build_catalogue())
    checked_in = CATALOGUE_PATH.read_text()
    if fresh != checked_in:
        import difflib

        diff = "".join(list(difflib.unified_diff(checked_in.splitlines(True), fresh.splitlines(True),
                                                 "keras.json (checked in)", "keras.json (installed Keras)"))[:80])
        pytest.fail("the catalogue drifted from the installed Keras; run python -m graphspec.catalogue.generate\n"
                    + diff)


def test_catalogue_is_sane():
    assert len(LAYER_ENTRIES) > 100
    for name in ("Dense", "Conv2D", "LSTM", "MultiHeadAttention", "Concatenate", "BatchNormalization"):
        assert name in CAT.layer_names
    for alias, entry in CAT.data["layers"].items():
        if "alias_of" in entry:
            assert entry["alias_of"] in LAYER_ENTRIES, alias
    assert "name" not in CAT.data["base_layer_args"]  # a node's name is its key


@pytest.mark.parametrize("key", RESERVED_NODE_KEYS)
def test_reserved_node_keys_collide_with_no_constructor_argument(key):
    clashes = [name for name, entry in LAYER_ENTRIES.items() if key in entry["args"]]
    assert clashes == [], f"'{key}' is reserved in a node but is a constructor argument of {clashes}"
    assert key not in CAT.data["base_layer_args"]


def test_reserved_keys_cover_the_node_forms():
    assert {"type", "input"} <= set(RESERVED_NODE_KEYS)


def test_deny_list_is_applied_to_the_catalogue():
    present = {name for name in DENIED_LAYERS if name in LAYER_ENTRIES}
    assert present == set(DENIED)
    for name in ("Lambda", "TFSMLayer", "TorchModuleWrapper"):
        assert name in DENIED
    for name in DENIED:
        assert name not in CAT.layer_names


def test_only_denied_layers_take_code_or_file_arguments():
    risky = {name: sorted(CODE_OR_FILE_ARGUMENTS & set(entry["args"])) for name, entry in LAYER_ENTRIES.items()
             if CODE_OR_FILE_ARGUMENTS & set(entry["args"]) and "denied" not in entry}
    assert risky == {}, f"layers that take code or a path but are not denied: {risky}"


def test_file_arguments_are_marked_list_only():
    for layer, arguments in FILE_ARGUMENTS.items():
        assert LAYER_ENTRIES[layer]["list_only_args"] == arguments


HEADER = "graphspec: 1\nname: m\ninputs:\n  x: {shape: [8]}\n"


@pytest.mark.parametrize("layer", DENIED)
def test_every_denied_layer_is_refused_by_check_with_its_reason(layer):
    reason = CAT.denied_reason(layer)
    texts = {
        "node": HEADER + f"nodes:\n  d: {{type: {layer}}}\noutputs: [d]\n",
        "shared": HEADER + f"layers:\n  s: {{type: {layer}}}\nnodes:\n  d: {{shared: s, input: x}}\noutputs: [d]\n",
        "sequential": HEADER + f"nodes:\n  d: {{sequential: [{{type: {layer}}}]}}\noutputs: [d]\n",
        "wrapped": HEADER + f"nodes:\n  d: {{type: TimeDistributed, layer: {{type: {layer}}}}}\noutputs: [d]\n",
    }
    lines = {"node": 6, "shared": 6, "sequential": 6, "wrapped": 6}
    for where, text in texts.items():
        with pytest.raises(SchemaError) as info:
            check_text(text, file="d.yaml")
        denied = [d for d in info.value.diagnostics if d.code == "denied-layer-type"]
        assert len(denied) == 1, (where, info.value.diagnostics)
        d = denied[0]
        assert f"'{layer}'" in d.message and reason in d.message, (where, d.message)
        assert d.line == lines[where] and d.col is not None and d.path[-1] == "type", (where, d)


@pytest.mark.parametrize("layer, argument", [(layer, arg) for layer, args in FILE_ARGUMENTS.items() for arg in args])
def test_file_arguments_must_be_inline_lists(layer, argument):
    dtype = "int64" if layer == "IntegerLookup" else "string"
    base = f"graphspec: 1\nname: m\ninputs:\n  x: {{shape: [1], dtype: {dtype}}}\nnodes:\n"
    with pytest.raises(SchemaError) as info:
        check_text(base + f"  d: {{type: {layer}, {argument}: vocab.txt}}\noutputs: [d]\n")
    assert [d.code for d in info.value.diagnostics] == ["file-argument"]
    vocabulary = "[1, 2, 3]" if layer == "IntegerLookup" else "[a, b, c]"
    check_text(base + f"  d: {{type: {layer}, {argument}: {vocabulary}}}\noutputs: [d]\n")
