"""A Functional or Sequential model config to spec data: inputs, shared layers, nodes, outputs, compile."""

from __future__ import annotations

import re
from typing import Any

from graphspec.catalogue import catalogue
from graphspec.importer.convert import ALIASES, Converter, _auto_name, snake
from graphspec.importer.source import fail
from graphspec.keras_config import is_op

_TENSOR = "__keras_tensor__"
_FUNCTIONAL = ("Functional", "Model")


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == _TENSOR


def _history(value: dict) -> tuple[str, int, int]:
    history = value["config"]["keras_history"]
    return history[0], int(history[1]), int(history[2])


def _walk_tensors(value: Any):
    if _is_tensor(value):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _walk_tensors(v)
    elif isinstance(value, dict) and value.get("class_name") == "__tuple__":
        yield from _walk_tensors(value.get("config", {}).get("value", []))
    elif isinstance(value, dict) and "class_name" not in value:
        for v in value.values():
            yield from _walk_tensors(v)


def model_to_spec(model: dict, compile_config: dict | None, where: str, conv: Converter,
                  call_names: dict[tuple[str, int], str] | None = None) -> dict:
    """Spec data for a top-level ``{class_name: Functional|Sequential, config: ...}``."""
    class_name = model.get("class_name")
    config = model.get("config") or {}
    if class_name == "Sequential":
        data = _sequential_to_spec(config, where, conv)
    elif class_name in _FUNCTIONAL:
        data = _functional_to_spec(config, where, conv, call_names or {})
    else:
        raise fail("not-a-model", f"{where}: the config is a '{class_name}', not a Functional or Sequential model",
                   "import a model: model.to_json(), a .keras file, or keras.applications.NAME", file=where)
    if compile_config:
        data["compile"] = _compile(compile_config, conv)
    return data


def _sequential_to_spec(config: dict, where: str, conv: Converter) -> dict:
    layers = list(config.get("layers") or [])
    shape, dtype = None, "float32"
    if layers and layers[0].get("class_name") == "InputLayer":
        first = layers.pop(0).get("config", {})
        shape = first.get("batch_shape") or first.get("batch_input_shape")
        dtype = first.get("dtype") or dtype
    elif config.get("build_input_shape"):
        shape = config["build_input_shape"]
    elif layers and (layers[0].get("config") or {}).get("batch_input_shape"):  # Keras 2
        shape = layers[0]["config"]["batch_input_shape"]
    if shape is None:
        raise fail("unbuilt-model", f"{where}: the Sequential model has no input shape (it was never built)",
                   "build it (call it on data or give keras.Input first) before saving", file=where)
    input_name = "input_layer"
    inputs = {input_name: _input_spec(shape, dtype, False, conv)}
    nodes: dict[str, Any] = {}
    for item in layers:
        name = item.get("config", {}).get("name") or item.get("name")
        nodes[name] = _layer_node(item, conv, _hint(conv, "nodes", name))
    name = config.get("name") or "sequential"
    return {"graphspec": 1, "name": _name(name), "inputs": inputs, "nodes": nodes, "outputs": [list(nodes)[-1]]}


def _input_spec(shape: list, dtype: Any, sparse: bool, conv: Converter) -> dict:
    spec: dict[str, Any] = {"shape": list(shape[1:])}
    dtype = conv.plain(dtype)
    if dtype not in (None, "float32"):
        spec["dtype"] = dtype
    if sparse:
        spec["sparse"] = True
    return spec


def _name(name: str) -> str:
    """A model name as a spec name: Keras allows any text (``mobilenetv2_1.00_224``), a spec a Name."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", str(name)) or "model"
    return text if re.match(r"[A-Za-z_]", text) else "model_" + text


def _hint(conv: Converter, section: str, name: str) -> dict | None:
    value = (getattr(conv, "hints", None) or {}).get(section, {}).get(name)
    return value if isinstance(value, dict) else None


def _layer_node(item: dict, conv: Converter, hint: dict | None = None) -> dict:
    class_name = item.get("class_name")
    config = dict(item.get("config") or {})
    if class_name == "Sequential":
        return _sequential_node(config, conv, hint)
    if class_name in _FUNCTIONAL and isinstance(hint, dict) and isinstance(hint.get("model"), str):
        # A graphspec-built archive whose spec loaded this sub-model from a file: the same 'model:' node
        # (the file must be beside the imported spec, as it was beside the original).
        node: dict[str, Any] = {"model": hint["model"]}
        if config.get("trainable") is False:
            node["trainable"] = False
        return node
    if class_name in _FUNCTIONAL:
        raise fail("nested-functional", f"{conv.where}: layer '{config.get('name')}' is a nested functional model",
                   "graphspec imports nested Sequential models as 'sequential:' nodes; save the inner model as "
                   "its own .keras file and use a 'model:' node, or inline its layers", file=conv.where)
    class_name = _plugin_or_keras(class_name, conv)
    return {"type": class_name, **conv.layer_args(class_name, config, keep_name=False, hint=hint)}


def _plugin_or_keras(class_name: str, conv: Converter) -> str:
    if catalogue().layer(class_name) is None:
        raise fail("unknown-layer", f"{conv.where}: '{class_name}' is not a Keras layer graphspec knows",
                   f"if '{class_name}' is your own layer, enable its plugin: graphspec import ... --plugin MODULE "
                   "(see docs/plugins.md)", file=conv.where)
    return class_name


def _sequential_node(config: dict, conv: Converter, hint: dict | None = None) -> dict:
    items = [item for item in config.get("layers") or [] if item.get("class_name") != "InputLayer"]
    hints = (hint or {}).get("sequential") or []
    sequential = []
    for i, item in enumerate(items):
        if item.get("class_name") in ("Sequential",) + _FUNCTIONAL:
            raise fail("nested-functional", f"{conv.where}: a model nested inside the sequential "
                       f"'{config.get('name')}' is not supported", file=conv.where)
        sequential.append(conv.nested_layer(item, hints[i] if i < len(hints) else None))
    node: dict[str, Any] = {"sequential": sequential}
    if config.get("trainable") is False:
        node["trainable"] = False
    return node


def _functional_to_spec(config: dict, where: str, conv: Converter,
                        call_names: dict[tuple[str, int], str]) -> dict:
    layers = list(config.get("layers") or [])
    inputs: dict[str, Any] = {}
    # Calls: (layer name, call index) -> node name; layers called more than once become shared layers.
    call_of: dict[tuple[str, int], str] = {}
    shared: dict[str, Any] = {}
    multi_output: set[tuple[str, int]] = set()
    for item in layers:
        for inbound in item.get("inbound_nodes") or []:
            for tensor in _walk_tensors(_call_parts(inbound, item, where)):
                layer, call, index = _history(tensor)
                if index > 0:
                    multi_output.add((layer, call))
    outputs_raw = config.get("output_layers")
    out_list = _layer_refs(outputs_raw)
    for layer, call, index in out_list:
        if index > 0:
            multi_output.add((layer, call))

    order: list[tuple[str, int, dict]] = []
    for item in layers:
        name = item.get("name") or item.get("config", {}).get("name")
        class_name = item.get("class_name")
        if class_name == "InputLayer":
            c = item.get("config") or {}
            shape = c.get("batch_shape") or c.get("batch_input_shape")
            inputs[name] = _input_spec(shape, c.get("dtype"), bool(c.get("sparse")), conv)
            call_of[(name, 0)] = name
            continue
        calls = item.get("inbound_nodes") or []
        if len(calls) > 1:
            shared[name] = _layer_node(item, conv, _hint(conv, "layers", name))
            for i in range(len(calls)):
                call_of[(name, i)] = call_names.get((name, i)) or f"{name}_call{i + 1}"
        else:
            call_of[(name, 0)] = name
        for i in range(len(calls)):
            order.append((name, i, item))
        if (item.get("config") or {}).get("return_state"):
            for i in range(len(calls)):
                multi_output.add((name, i))

    def ref(tensor: dict) -> str:
        layer, call, index = _history(tensor)
        node = call_of.get((layer, call))
        if node is None:
            raise fail("bad-config", f"{where}: a tensor comes from '{layer}' call {call}, which is not in the model",
                       file=where)
        return f"{node}[{index}]" if (layer, call) in multi_output else node

    nodes: dict[str, Any] = {}
    # Keras' config lists layers in model.layers order; a shared layer's calls come where Keras made them,
    # which is after the nodes that feed them: place each call after its producers.
    placed: set[str] = set(inputs)
    pending = [(layer, call, item) for layer, call, item in order]
    progress = True
    while pending and progress:
        progress = False
        rest = []
        for layer, call, item in pending:
            inbound = item["inbound_nodes"][call]
            parts = _call_parts(inbound, item, where)
            producers = {call_of.get(_history(t)[:2]) for t in _walk_tensors(parts)}
            if not producers <= placed:
                rest.append((layer, call, item))
                continue
            node_name = call_of[(layer, call)]
            if layer in shared:
                node: dict[str, Any] = {"shared": layer}
            elif is_op(item):
                node = _op_node(item, conv)
                written = (_hint(conv, "nodes", node_name) or {}).get("op")
                if isinstance(written, str) and ALIASES.get(written) == node["op"]:
                    node["op"] = written
            else:
                node = _layer_node(item, conv, _hint(conv, "nodes", node_name))
            node_input, call_args = _inputs(item, parts, ref, conv, op=is_op(item))
            if is_op(item):
                node.update(call_args)
                call_args = {}
            if node.get("type") == "MultiHeadAttention" and "attention_axes" in node \
                    and "attention_axes" not in (_hint(conv, "nodes", node_name) or {}):
                first = next(_walk_tensors(parts), None)
                rank = len(first["config"].get("shape") or []) if first and "shape" in first["config"] else None
                if rank and node["attention_axes"] == list(range(1, rank - 1)):
                    del node["attention_axes"]  # Keras' default: every axis but the batch and the features
            node["input"] = node_input
            if call_args:
                node["call"] = call_args
            nodes[node_name] = node
            placed.add(node_name)
            progress = True
        pending = rest
    if pending:
        raise fail("bad-config", f"{where}: the layers {', '.join(p[0] for p in pending[:5])} take tensors from "
                   "layers that are not in the model", file=where)

    if isinstance(outputs_raw, dict):
        outputs: Any = {key: ref({"class_name": _TENSOR, "config": {"keras_history": list(value)}})
                        for key, value in outputs_raw.items()}
    else:
        outputs = [ref({"class_name": _TENSOR, "config": {"keras_history": list(r)}}) for r in out_list]
    _omit_implicit_inputs(inputs, nodes)
    data: dict[str, Any] = {"graphspec": 1, "name": _name(config.get("name") or "model"), "inputs": inputs}
    if shared:
        data["layers"] = shared
    data["nodes"] = nodes
    data["outputs"] = outputs
    return data


def _layer_refs(raw: Any) -> list[tuple[str, int, int]]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [tuple(v) for v in raw.values()]
    if raw and isinstance(raw[0], str):
        return [tuple(raw)]
    return [tuple(r) for r in raw]


def _call_parts(inbound: Any, item: dict, where: str) -> dict:
    """``{"args": [...], "kwargs": {...}}`` of one call (Keras 3), or a Keras 2 inbound node list."""
    if isinstance(inbound, dict):
        return {"args": inbound.get("args") or [], "kwargs": inbound.get("kwargs") or {}}
    if isinstance(inbound, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
        tensors = [{"class_name": _TENSOR, "config": {"keras_history": [e[0], e[1], e[2]]}} for e in inbound]
        kwargs = inbound[0][3] if inbound and len(inbound[0]) > 3 and isinstance(inbound[0][3], dict) else {}
        return {"args": [tensors[0] if len(tensors) == 1 else tensors], "kwargs": kwargs}
    raise fail("bad-config", f"{where}: layer '{item.get('name')}' has an inbound node graphspec cannot read",
               file=where)


def _op_name(item: dict, conv: Converter) -> str:
    name = snake(item.get("class_name", ""))
    if catalogue().op(name) is None:
        raise fail("unknown-op", f"{conv.where}: '{item.get('name')}' calls keras.ops '{name}', which op: nodes "
                   "may not call", "see docs/spec.md for the allow-listed keras.ops functions", file=conv.where)
    return name


def _op_node(item: dict, conv: Converter) -> dict:
    """``{op: name, ...}`` with the op's arguments Keras keeps in its config (``axis``, ``keepdims``), defaults left out."""
    name = _op_name(item, conv)
    known = catalogue().op(name)["args"]
    node: dict[str, Any] = {"op": name}
    for key, value in (item.get("config") or {}).items():
        if key == "name":
            continue
        value = conv.plain(value)
        if key in known and "default" in known[key] and known[key]["default"] == value:
            continue
        node[key] = value
    return node


def _inputs(item: dict, parts: dict, ref, conv: Converter, *, op: bool) -> tuple[Any, dict]:
    """``(input:, call: or the op's arguments)`` of one call."""
    args, kwargs = parts["args"], dict(parts["kwargs"])
    if op:
        entry = catalogue().op(_op_name(item, conv))
        operands = entry["operands"]
        tensor_inputs: list[str] = []
        extra: dict[str, Any] = {}
        if entry.get("variadic"):
            flat = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            tensor_inputs = [ref(t) for t in flat if _is_tensor(t)]
        else:
            for operand, value in zip(operands, args):
                if _is_tensor(value):
                    tensor_inputs.append(ref(value))
                elif isinstance(value, list) and value and all(_is_tensor(v) for v in value):
                    tensor_inputs.extend(ref(v) for v in value)
                else:
                    extra[operand] = conv.plain(value)
            for key, value in kwargs.items():
                if _is_tensor(value):
                    tensor_inputs.append(ref(value))
                else:
                    extra[key] = conv.plain(value)
        return (tensor_inputs[0] if len(tensor_inputs) == 1 else tensor_inputs), extra
    call: dict[str, Any] = {}
    tensor_kwargs: dict[str, Any] = {}
    for key, value in kwargs.items():
        tensors = list(_walk_tensors(value))
        if tensors:
            tensor_kwargs[key] = [ref(t) for t in value] if isinstance(value, list) else ref(value)
        elif value is None or (key == "training" and value is False):
            continue  # recorded by Keras for every call
        else:
            call[key] = conv.plain(value)
    entry = catalogue().layer(item.get("class_name")) if item.get("class_name") else None
    call_args = entry["call_args"] if entry else ["inputs"]
    positional = []
    for value in args:
        if _is_tensor(value):
            positional.append(ref(value))
        elif isinstance(value, list) and all(_is_tensor(v) for v in value):
            positional.append([ref(v) for v in value])
        else:
            raise fail("bad-config", f"{conv.where}: layer '{item.get('name')}' is called with a constant "
                       "positional argument, which a spec cannot write", file=conv.where)
    if tensor_kwargs or (len(positional) > 1 and call_args and call_args[0] == "inputs"):
        structure = {call_args[i]: value for i, value in enumerate(positional)}
        structure.update(tensor_kwargs)
        return structure, call
    if len(positional) == 1:
        return positional[0], call
    return positional, call


def _omit_implicit_inputs(inputs: dict, nodes: dict) -> None:
    previous = next(iter(inputs)) if len(inputs) == 1 else None
    for name, node in nodes.items():
        if node.get("input") == previous and previous is not None:
            del node["input"]
        previous = name


def _compile(config: dict, conv: Converter) -> dict:
    section: dict[str, Any] = {}
    optimizer = config.get("optimizer")
    if optimizer is not None:
        hint = ((getattr(conv, "hints", None) or {}).get("compile") or {}).get("optimizer")
        section["optimizer"] = conv.object_value("optimizers", optimizer, hint) if isinstance(optimizer, dict) \
            else optimizer
    for key in ("loss", "loss_weights", "metrics", "weighted_metrics"):
        value = config.get(key)
        if value is not None:
            section[key] = _compile_value(value, key, conv)
    if config.get("steps_per_execution", 1) != 1:
        section["steps_per_execution"] = config["steps_per_execution"]
    return section


def _compile_value(value: Any, key: str, conv: Converter) -> Any:
    namespace = "losses" if key == "loss" else "metrics"
    if isinstance(value, dict) and "class_name" in value:
        return conv.object_value(namespace, value)
    if isinstance(value, dict):
        return {k: _compile_value(v, key, conv) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_value(v, key, conv) for v in value]
    return conv.plain(value)


__all__ = ["model_to_spec", "_auto_name"]
