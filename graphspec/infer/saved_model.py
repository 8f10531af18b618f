"""Shapes through a ``model:`` node: graphspec's own rules run over the saved model's ``config.json``.

A ``.keras`` archive's ``config.json`` holds the model's layers with their constructor arguments
and, for a functional model, every call of every layer with its input tensors (``inbound_nodes``)
and the model's inputs and outputs. It carries no output shapes, so the rules of
:mod:`graphspec.infer.rules` are applied to the saved layers, in the saved graph's order, on the
tensors the ``model:`` node receives — in pure Python, before Keras loads anything (the file was
already checked by :func:`graphspec.resolve.saved_model_file`).

Supported: a functional model (``Functional``/``Model``) or a ``Sequential`` of built-in layers, each
with a shape rule. Anything else — a nested model inside the saved model, a layer without a rule, a
call whose arguments graphspec cannot read — leaves the node's shapes unknown, as before: Keras
infers them at build time. Parameters are counted once per layer; like Keras' ``trainable`` on the
loaded model, the node's ``trainable:`` decides for every saved layer.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path as FsPath
from typing import Any

from graphspec.catalogue import NESTED_LAYER_ARGS, catalogue
from graphspec.infer.tensor import RuleResult, ShapeError, TensorInfo, show

MAX_LAYERS = 20_000
"""More saved layers than this are left to Keras (check stays fast)."""


class _Unknown(Exception):
    """The saved model holds something graphspec cannot infer: its shapes are left to Keras."""


def read_config(path: FsPath) -> dict | None:
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return config if isinstance(config, dict) else None


def infer_saved_model(path: FsPath | None, inputs: Any, trainable: bool) -> RuleResult | None:
    """Output tensors and parameter counts of the saved model at ``path`` called on ``inputs``
    (a :class:`TensorInfo` or a list of them); None where they are left to Keras.

    Raises :class:`ShapeError` when the inputs do not fit the saved model or one of its layers.
    """
    if path is None:
        return None
    config = read_config(path)
    if config is None:
        return None
    try:
        outputs, params, non_trainable = _infer(config, inputs)
    except _Unknown:
        return None
    if not trainable:
        params, non_trainable = 0, params + non_trainable
    return RuleResult(outputs, params, non_trainable)


def _infer(config: dict, inputs: Any):
    class_name = config.get("class_name")
    body = config.get("config")
    if not isinstance(body, dict) or not isinstance(body.get("layers"), list) or len(body["layers"]) > MAX_LAYERS:
        raise _Unknown
    if class_name == "Sequential":
        return _sequential(body["layers"], inputs)
    if class_name in ("Functional", "Model"):
        return _functional(body, inputs)
    raise _Unknown


def _policy_name(value: Any) -> Any:
    """A saved dtype policy ``{class_name: DTypePolicy, config: {name: float32}}`` as its name."""
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
        raise _Unknown
    return value


def _spec_args(layer: dict) -> tuple[str, dict[str, Any]]:
    """A saved layer ``{class_name, config}`` as graphspec's ``(type, arguments)``."""
    class_name = layer.get("class_name")
    config = layer.get("config")
    entry = catalogue().layer(class_name) if isinstance(class_name, str) else None
    if entry is None or not isinstance(config, dict) or not str(layer.get("module", "keras")).startswith("keras"):
        raise _Unknown  # a nested model, or a class graphspec has no catalogue entry for
    args: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("name", "trainable") or key not in entry["args"]:
            continue
        if key == "dtype":
            args[key] = _policy_name(value)
        elif key in NESTED_LAYER_ARGS and isinstance(value, dict):
            inner_type, inner_args = _spec_args(value)
            args[key] = {"type": inner_type, **inner_args}
        elif isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
            continue  # initializers, regularizers, constraints: no rule reads them
        else:
            args[key] = value
    return class_name, args


def _apply(name: str, layer: dict, inputs: Any, call: dict | None = None) -> RuleResult:
    from graphspec.infer import infer_layer

    layer_type, args = _spec_args(layer)
    try:
        result = infer_layer(layer_type, args, inputs, call)
    except ShapeError as error:
        error.message = f"in the saved model, layer '{name}' ({layer_type}): {error.message}"
        error.argument = None  # the arguments are in the saved file, not in the spec
        raise
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, AttributeError):
        raise _Unknown from None
    if result is None:
        raise _Unknown
    return result


def _fit_input(name: str, batch_shape: Any, dtype: Any, given: TensorInfo) -> TensorInfo:
    """The tensor a saved input layer passes on, given what the node receives."""
    if not isinstance(batch_shape, list) or not isinstance(given, TensorInfo):
        raise _Unknown
    expected = tuple(batch_shape)
    if len(expected) != given.rank or any(e is not None and g is not None and e != g
                                          for e, g in zip(expected[1:], given.shape[1:])):
        raise ShapeError(f"the saved model's input '{name}' takes {show(expected)}, got {given}",
                         hint="give the saved model an input of the shape it was built for")
    shape = tuple(g if g is not None else e for e, g in zip(expected, given.shape))
    return TensorInfo(shape, dtype if isinstance(dtype, str) else given.dtype)


def _sequential(layers: list, inputs: Any):
    if not isinstance(inputs, TensorInfo):
        raise _Unknown
    current = inputs
    params = non_trainable = 0
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise _Unknown
        config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = str(config.get("name", i))
        if layer.get("class_name") == "InputLayer":
            current = _fit_input(name, config.get("batch_shape"), config.get("dtype"), current)
            continue
        result = _apply(name, layer, current)
        if not isinstance(result.outputs, TensorInfo):
            raise _Unknown
        current = result.outputs
        params += result.params
        non_trainable += result.non_trainable_params
    return current, params, non_trainable


def _history(value: Any) -> tuple[str, int, int] | None:
    """``(layer, node index, tensor index)`` of a saved ``__keras_tensor__``, or None if not a tensor."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = (value.get("config") or {}).get("keras_history")
        if isinstance(history, list) and len(history) == 3 and isinstance(history[0], str) \
                and all(isinstance(i, int) for i in history[1:]):
            return history[0], history[1], history[2]
        raise _Unknown
    return None


def _histories(value: Any) -> list[tuple[str, int, int]]:
    """Every saved tensor referenced anywhere in a call's arguments."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        history = _history(item)
        if history is not None:
            found.append(history)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _endpoints(value: Any) -> list[tuple[str, int, int]]:
    """A saved model's ``input_layers``/``output_layers``: one ``[name, node, tensor]`` or a list of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [(value[0], value[1], value[2])]
    if isinstance(value, list) and all(isinstance(v, list) and len(v) == 3 for v in value):
        return [(v[0], v[1], v[2]) for v in value]
    raise _Unknown


def _functional(body: dict, inputs: Any):
    tensors: dict[tuple[str, int], list[TensorInfo]] = {}
    by_name = {layer.get("name") or (layer.get("config") or {}).get("name"): layer
               for layer in body["layers"] if isinstance(layer, dict)}
    model_inputs = _endpoints(body.get("input_layers"))
    given = inputs if isinstance(inputs, list) else [inputs]
    if len(given) != len(model_inputs):
        raise ShapeError(f"the saved model takes {len(model_inputs)} input{'s' if len(model_inputs) > 1 else ''}, "
                         f"got {len(given)}", code="wrong-input-count",
                         hint="give 'input:' one reference per input of the saved model, in its order")
    for (name, _, _), tensor in zip(model_inputs, given):
        layer = by_name.get(name)
        if not isinstance(layer, dict) or layer.get("class_name") != "InputLayer":
            raise _Unknown
        config = layer.get("config") or {}
        tensors[(name, 0)] = [_fit_input(name, config.get("batch_shape"), config.get("dtype"), tensor)]

    def lookup(value: Any) -> Any:
        history = _history(value)
        if history is None:
            return value
        found = tensors.get(history[:2])
        if found is None or history[2] >= len(found):
            raise _Unknown  # not in graph order, or from a layer left to Keras
        return found[history[2]]

    # Every call of every layer, run once its input tensors are known (a shared layer's later call may
    # take a tensor of a layer listed after it, as Keras' own loader allows).
    calls: list[tuple[str, int, dict, dict]] = []
    for layer in body["layers"]:
        if not isinstance(layer, dict) or layer.get("class_name") == "InputLayer":
            continue
        name = layer.get("name") or (layer.get("config") or {}).get("name")
        nodes = layer.get("inbound_nodes")
        if not isinstance(name, str) or not isinstance(nodes, list):
            raise _Unknown
        for index, node in enumerate(nodes):
            if not isinstance(node, dict) or not isinstance(node.get("args"), list) or \
                    not isinstance(node.get("kwargs", {}), dict) or len(node["args"]) != 1:
                raise _Unknown  # several positional tensors (MultiHeadAttention's query, value)
            calls.append((name, index, layer, node))
    waiting: dict[tuple[str, int], list[int]] = {}
    missing: list[int] = []
    for i, (_, _, _, node) in enumerate(calls):
        needed = {h[:2] for h in _histories(node)}
        missing.append(len(needed - tensors.keys()))
        for key in needed - tensors.keys():
            waiting.setdefault(key, []).append(i)
    ready = [i for i, count in enumerate(missing) if count == 0]
    counted: set[str] = set()
    params = non_trainable = 0
    while ready:
        name, index, layer, node = calls[ready.pop(0)]
        main = node["args"][0]
        main = [lookup(v) for v in main] if isinstance(main, list) else lookup(main)
        tensor_kwargs, call = {}, {}
        for key, value in node.get("kwargs", {}).items():
            items = value if isinstance(value, list) else [value]
            if any(_history(v) is not None for v in items):
                tensor_kwargs[key] = [lookup(v) for v in value] if isinstance(value, list) else lookup(value)
            else:
                call[key] = value
        if tensor_kwargs:
            entry = catalogue().layer(layer.get("class_name")) or {"call_args": []}
            if not entry["call_args"]:
                raise _Unknown
            structure: Any = {entry["call_args"][0]: main, **tensor_kwargs}
        else:
            structure = main
        result = _apply(name, layer, structure, call)
        tensors[(name, index)] = result.outputs if isinstance(result.outputs, list) else [result.outputs]
        if name not in counted:  # a shared layer's weights once
            counted.add(name)
            params += result.params
            non_trainable += result.non_trainable_params
        for waiter in waiting.pop((name, index), ()):
            missing[waiter] -= 1
            if missing[waiter] == 0:
                ready.append(waiter)
    outputs = [lookup({"class_name": "__keras_tensor__", "config": {"keras_history": list(end)}})
               for end in _endpoints(body.get("output_layers"))]
    return (outputs[0] if len(outputs) == 1 else outputs), params, non_trainable
