"""``--fold``: repeated sub-graphs of an imported spec written as ``blocks:`` and ``repeat:``.

Keras' own models name the layers of a repeated unit with a common prefix (``conv3_block2_1_conv``,
``conv3_block2_add``); an *instance* here is a run of consecutive nodes sharing such a prefix (its last
name part before the local name has letters then digits: ``block2``, ``conv3``, ``block1a``). Instances with
the same local names, layer types and wiring, one input from outside and only their last node used outside,
become calls of one block; the arguments that differ between them become the block's parameters (an argument
some instances leave at Keras' default is written ``omit`` there). Consecutive calls of a block that each
take the previous one's output and whose names count up (``conv3_block2``, ``conv3_block3``) become one node
with ``repeat: {count, name}`` and per-iteration values. The expanded spec is the imported one: the graph hash
is unchanged (checked by the caller).
"""

from __future__ import annotations

import json
import re
from typing import Any

from graphspec.catalogue import catalogue
from graphspec.importer.convert import short_size

_UNIT = re.compile(r"^[A-Za-z]+[0-9]+[a-z]?$")
_REF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\[[0-9]+\])?$")
_RESERVED = {"block", "input", "repeat", "when", "i", "variant", "type", "call", "shared", "op", "sequential", "model"}


def _prefix(name: str) -> tuple[str, str] | None:
    parts = name.split("_")
    for k in range(len(parts) - 1, 0, -1):
        if _UNIT.match(parts[k - 1]):
            return "_".join(parts[:k]), "_".join(parts[k:])
    return None


def _refs(structure: Any) -> list[str]:
    if isinstance(structure, str):
        return [structure]
    if isinstance(structure, list):
        return [r for v in structure for r in _refs(v)]
    if isinstance(structure, dict):
        return [r for v in structure.values() for r in _refs(v)]
    return []


def _map_refs(structure: Any, fn) -> Any:
    if isinstance(structure, str):
        return fn(structure)
    if isinstance(structure, list):
        return [_map_refs(v, fn) for v in structure]
    if isinstance(structure, dict):
        return {k: _map_refs(v, fn) for k, v in structure.items()}
    return structure


def _split(ref: str) -> tuple[str, str]:
    match = _REF.match(ref)
    return (match.group(1), match.group(2) or "") if match else (ref, "")


def _explicit_inputs(data: dict) -> dict[str, dict]:
    nodes = {}
    previous = next(iter(data["inputs"])) if len(data["inputs"]) == 1 else None
    for name, node in data["nodes"].items():
        node = dict(node)
        if "input" not in node:
            node["input"] = previous
        nodes[name] = node
        previous = name
    return nodes


def fold(data: dict) -> dict:
    """``data`` with its repeated instances folded (a new dict; ``data`` itself is left as it is)."""
    nodes = _explicit_inputs(data)
    names = list(nodes)
    # 1. instances: runs of consecutive nodes with the same prefix
    runs: list[tuple[str | None, list[str]]] = []
    for name in names:
        split = _prefix(name)
        key = split[0] if split else None
        if runs and key is not None and runs[-1][0] == key:
            runs[-1][1].append(name)
        else:
            runs.append((key, [name]))
    used_by: dict[str, set[str]] = {}
    for name, node in nodes.items():
        for ref in _refs(node.get("input")):
            used_by.setdefault(_split(ref)[0], set()).add(name)
    for ref in _refs(data["outputs"] if isinstance(data["outputs"], list) else list(data["outputs"].values())):
        used_by.setdefault(_split(ref)[0], set()).add("<outputs>")

    signatures: dict[str, list[tuple[str, list[str], str]]] = {}
    for prefix, members in runs:
        if prefix is None or len(members) < 2:
            continue
        sig = _signature(prefix, members, nodes, used_by)
        if sig is not None:
            signature, external = sig
            signatures.setdefault(signature, []).append((prefix, members, external))
    folded = {sig: insts for sig, insts in signatures.items() if len(insts) >= 2}
    if not folded:
        return data

    blocks: dict[str, dict] = {}
    calls: dict[str, tuple[str, dict, str]] = {}  # first member -> (call name, call node, block)
    member_of: dict[str, str] = {}
    taken = set(names) | set(data["inputs"]) | set(data.get("layers") or {})
    for signature, instances in folded.items():
        made = _make_block(instances, nodes)
        if made is None:
            continue
        block, args_per_instance = made
        block_name = _block_name(instances[0][0], blocks, taken)
        blocks[block_name] = block
        for (prefix, members, external), args in zip(instances, args_per_instance):
            calls[members[0]] = (prefix, {"block": block_name, **args, "input": external}, block_name)
            for member in members:
                member_of[member] = prefix

    # 2. the top-level nodes: calls in place of their instances; references to an instance's last node -> the call
    last_of = {}
    for prefix, members, _ in (inst for insts in folded.values() for inst in insts):
        if members[0] in calls:
            last_of[members[-1]] = prefix
    if not blocks:
        return data

    def rename(ref: str) -> str:
        name, index = _split(ref)
        return last_of.get(name, name) + index

    out_nodes: dict[str, dict] = {}
    for name in names:
        if name in calls:
            prefix, call, _ = calls[name]
            call = dict(call)
            call["input"] = _map_refs(call["input"], rename)
            out_nodes[prefix] = call
        elif name in member_of:
            continue
        else:
            node = dict(nodes[name])
            node["input"] = _map_refs(node["input"], rename)
            out_nodes[name] = node
    out_nodes = _repeat_chains(out_nodes)
    outputs = _map_refs(data["outputs"], rename)
    _omit_inputs(out_nodes, next(iter(data["inputs"])) if len(data["inputs"]) == 1 else None)
    result: dict[str, Any] = {}
    for key, value in data.items():
        if key == "nodes":
            result["blocks"] = blocks
            result["nodes"] = out_nodes
        elif key == "outputs":
            result["outputs"] = outputs
        else:
            result[key] = value
    return result


def _signature(prefix: str, members: list[str], nodes: dict, used_by: dict) -> tuple[str, str] | None:
    local = {m: m[len(prefix) + 1:] for m in members}
    externals: list[str] = []
    parts = []
    for m in members:
        node = nodes[m]
        if "shared" in node or "model" in node:
            return None
        for ref in _refs(node.get("input")):
            name, _ = _split(ref)
            if name not in local and ref not in externals:
                externals.append(ref)
        wiring = _map_refs(node.get("input"), lambda r: local[_split(r)[0]] + _split(r)[1]
                           if _split(r)[0] in local else "<x>")
        kind = node.get("type") or ("op:" + str(node.get("op")) if "op" in node else json.dumps(node.get("sequential")))
        parts.append((local[m], kind, wiring, sorted(k for k in node if k not in ("input",)) if "sequential" in node
                      else None))
    if len(externals) != 1:
        return None
    for m in members[:-1]:
        if any(user not in members for user in used_by.get(m, ())):
            return None
    return json.dumps(parts, sort_keys=True), externals[0]


def _block_name(prefix: str, blocks: dict, taken: set) -> str:
    base = re.sub(r"[0-9]+[a-z]?$", "", prefix.split("_")[-1]) or "unit"
    name, k = base, 2
    while name in blocks or name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _factor(base: list, values: list) -> int | None:
    """``k`` where every value is ``k`` times the base's (ints, k >= 2), else None."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in base + values):
        return None
    if values[0] % base[0]:
        return None
    k = values[0] // base[0]
    return k if k >= 2 and all(v == k * b for b, v in zip(base, values)) else None


def _make_block(instances: list, nodes: dict) -> tuple[dict, list[dict]] | None:
    first_prefix, first_members, _ = instances[0]
    locals_ = [m[len(first_prefix) + 1:] for m in first_members]
    block_nodes: dict[str, dict] = {}
    params: dict[str, dict] = {}
    vectors: dict[str, list] = {}
    args_per_instance: list[dict] = [{} for _ in instances]
    for position, local in enumerate(locals_):
        per = [nodes[members[position]] for _, members, _ in instances]
        keys: list[str] = []
        for node in per:
            keys.extend(k for k in node if k not in keys and k != "input")
        template: dict[str, Any] = {}
        for key in keys:
            values = [node.get(key, _MISSING) for node in per]
            if all(v == values[0] for v in values):
                template[key] = values[0]
                continue
            default = short_size(key, _default(per[0], key))
            concrete = [default if v is _MISSING else v for v in values]
            kind = _type_of(concrete)
            if kind is None:
                return None
            expression = None
            for name, vector in vectors.items():  # the same values as a parameter already made, or a multiple of them
                if vector == concrete:
                    expression = name
                    break
                factor = _factor(vector, concrete)
                if factor is not None:
                    expression = f"{factor} * {name}"
                    break
            if expression is None:
                param = _param_name(key, local, params)
                params[param] = {"type": kind}
                vectors[param] = concrete
                expression = param
                for args, value in zip(args_per_instance, concrete):
                    args[param] = value
            if any(v is _MISSING for v in values):
                template[key] = "${" + f"{expression} if {expression} != {_literal(default)} else omit" + "}"
            else:
                template[key] = "${" + expression + "}"
        node_input = per[0].get("input")
        prefix = first_prefix
        template["input"] = _map_refs(node_input, lambda r: (_split(r)[0][len(prefix) + 1:] + _split(r)[1])
                                      if _split(r)[0].startswith(prefix + "_") else "x")
        block_nodes[local] = template
    _omit_inputs(block_nodes, "x")
    block: dict[str, Any] = {}
    if params:
        block["params"] = params
    block["nodes"] = block_nodes
    block["outputs"] = [locals_[-1]]
    return block, args_per_instance


_MISSING = object()


def _param_name(key: str, local: str, params: dict) -> str:
    name = key if key not in params and key not in _RESERVED else f"{key}_{local}"
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    k = 2
    base = name
    while name in params or name in _RESERVED:
        name, k = f"{base}_{k}", k + 1
    return name


def _default(node: dict, key: str) -> Any:
    entry = catalogue().layer(node["type"]) if "type" in node else None
    if entry and key in entry["args"] and "default" in entry["args"][key]:
        return entry["args"][key]["default"]
    return None


def _type_of(values: list) -> str | None:
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, str) for v in values):
        return "string"
    return "list" if all(isinstance(v, list) for v in values) else None


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value).replace('"', "'")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _repeat_chains(nodes: dict[str, dict]) -> dict[str, dict]:
    """Consecutive calls of one block, each fed by the one before, named STEM<n>, STEM<n+1>, ... -> one repeated node."""
    out: dict[str, dict] = {}
    items = list(nodes.items())
    i = 0
    while i < len(items):
        name, node = items[i]
        chain = [(name, node)]
        match = re.match(r"^(.*?)([0-9]+)$", name)
        if "block" in node and match:
            stem, start = match.group(1), int(match.group(2))
            j = i + 1
            while j < len(items):
                nxt_name, nxt = items[j]
                if nxt.get("block") != node["block"] or nxt.get("input") != chain[-1][0] \
                        or nxt_name != f"{stem}{start + len(chain)}":
                    break
                chain.append((nxt_name, nxt))
                j += 1
        if len(chain) < 2:
            out[name] = node
            i += 1
            continue
        stem, start = match.group(1), int(match.group(2))
        call: dict[str, Any] = {"block": node["block"]}
        for key in node:
            if key in ("block", "input"):
                continue
            values = [n[key] for _, n in chain]
            call[key] = values[0] if all(v == values[0] for v in values) else \
                "${" + "[" + ", ".join(_literal(v) for v in values) + "][i]}"
        call["input"] = node["input"]
        offset = f" + {start}" if start else ""
        call["repeat"] = {"count": len(chain), "name": f"{stem}${{i{offset}}}"}
        out[chain[-1][0]] = call  # the key names the last iteration, as references to it do
        i += len(chain)
    return out


def _omit_inputs(nodes: dict[str, dict], first: str | None) -> None:
    previous = first
    for name, node in nodes.items():
        if node.get("input") == previous and previous is not None:
            del node["input"]
        elif node.get("input") is None:
            node.pop("input", None)
        previous = name
