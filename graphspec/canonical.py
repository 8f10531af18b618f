"""The canonical form of a spec and its hash.

Two specs have the same canonical form whatever their formatting, comments, key
order, number spelling (``1e-3`` / ``0.001``) and implicit inputs: the validated
spec is dumped with graphspec's own defaults filled in and every node's input made
explicit, as JSON with sorted keys. Keras' defaults are *not* filled in: they belong
to the installed Keras, and a spec's hash must not change when Keras is upgraded.
Writing a Keras default out (``use_bias: true``) is a change of the spec's text, and
changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from graphspec.resolve import Graph, TensorRef


def canonical_data(graph: Graph) -> dict[str, Any]:
    """The canonical form: for a language 1.1 spec (blocks, params), the spec as written -- blocks kept,
    expressions unevaluated -- with the parameter values and the variant in effect written in."""
    expansion = getattr(graph.source, "expansion", None)
    if expansion is not None:
        return json.loads(json.dumps(expansion.written, allow_nan=True))
    return expanded_data(graph)


def expanded_data(graph: Graph) -> dict[str, Any]:
    """The flat (expanded) spec with graphspec's defaults filled in and every node's input explicit."""
    data = graph.spec.model_dump(mode="json", by_alias=True)
    if data.get("weights") is None:  # a section not written never reaches the flat spec (hashes stay)
        data.pop("weights", None)
    for name, node in graph.nodes.items():
        data["nodes"][name]["input"] = _ref_text(node.inputs)
    for node in data["nodes"].values():
        for layer in node.get("sequential") or ():
            if layer.get("name") is None:  # unnamed: the form (and hash) of specs written before names existed
                layer.pop("name", None)
    return data


def _ref_text(structure) -> Any:
    if isinstance(structure, TensorRef):
        return str(structure)
    if isinstance(structure, list):
        return [str(r) for r in structure]
    return {k: [str(x) for x in r] if isinstance(r, list) else str(r) for k, r in structure.items()}


def canonical_json(graph: Graph) -> str:
    data = _with_plugins(canonical_data(graph), graph)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=True)


def _with_plugins(data: dict[str, Any], graph: Graph) -> dict[str, Any]:
    """The canonical form with the plugins whose layers the spec uses (name, version, SHA-256 of their
    source): changing a plugin changes the hash. Specs without plugins keep their hash."""
    if data.get("plugins") is None:
        data.pop("plugins", None)  # the optional 'plugins:' requirement, when not written
    if graph.plugins:
        data["plugin_versions"] = [plugin.record() for plugin in graph.plugins]
    return data


def spec_hash(graph: Graph) -> str:
    """``sha256:<hex>`` of the canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(graph).encode("utf-8")).hexdigest()


GRAPH_SECTIONS = ("name", "inputs", "layers", "nodes", "outputs", "compile")
"""What the graph hash covers: the model built (not its description, expectations or training)."""


def graph_hash(checked_or_graph) -> str:
    """``sha256:<hex>`` of the expanded graph: equal for two specs that build the same model, whether its nodes
    are written out or made by blocks, repeat and parameters (description, expect and train left out)."""
    graph = getattr(checked_or_graph, "graph", checked_or_graph)
    data = expanded_data(graph)
    flat = {key: data.get(key) for key in GRAPH_SECTIONS}
    text = json.dumps(flat, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def saved_model_digests(graph: Graph) -> dict[str, str]:
    """``sha256:<hex>`` of each saved model a ``model:`` node loads, by node name.

    The spec hash identifies the spec's text; a model built from it also depends on the
    contents of these files, so artifacts and training runs record them beside the hash.
    """
    digests: dict[str, str] = {}
    for name, node in graph.nodes.items():
        if node.model_file is not None:
            digest = hashlib.sha256()
            with open(node.model_file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            digests[name] = "sha256:" + digest.hexdigest()
    return digests
