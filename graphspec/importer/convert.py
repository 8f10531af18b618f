"""A Keras model config (plain JSON) to spec data.

Pure Python over the config's JSON: no Keras object is deserialized. Keras' defaults are left out by
comparing each argument with the catalogue's default for it (the catalogue is what ``check`` uses), after
undoing what ``get_config()`` does to a value (``activation: linear`` for None, sizes as lists, initializers
as serialized objects, dtype policies).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from graphspec.catalogue import NESTED_LAYER_ARGS, catalogue, nested_namespace
from graphspec.importer.source import fail

_AUTO_NAME = re.compile(r"^[a-z0-9_]+?(_[0-9]+)?$")


def snake(name: str) -> str:
    """Keras' own snake-casing of a class name (``GlobalAveragePooling2D`` -> ``global_average_pooling2d``)."""
    text = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", text).lower()


def f32(value: float) -> float:
    """The shortest float that rounds to the same float32 (Keras stores ``1e-3`` as 0.0010000000474974513)."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    packed = struct.unpack("f", struct.pack("f", value))[0]
    if packed != value:
        return value  # not a float32 value: keep it exactly
    for digits in range(1, 18):
        short = float(f"{value:.{digits}g}")
        if struct.unpack("f", struct.pack("f", short))[0] == packed:
            return short
    return value


def _is_serialized(value: Any) -> bool:
    return isinstance(value, dict) and "class_name" in value and "config" in value


@dataclass
class Converted:
    data: dict
    notes: list[str] = field(default_factory=list)


class Converter:
    """One model config to spec data (``graphspec: 1`` ... ``outputs``; ``compile`` from ``compile_config``)."""

    def __init__(self, where: str, plugin_classes: set[str] | None = None):
        self.where = where
        self.cat = catalogue()
        self.plugin_classes = plugin_classes or set()

    # -- values ------------------------------------------------------------------------------------
    def object_value(self, namespace: str, value: Any, hint: Any = None) -> Any:
        """A serialized initializer/regularizer/constraint/optimizer in its short spec form (``hint``: how a
        graphspec-built archive's spec wrote it, whose written defaults are kept)."""
        if not _is_serialized(value):
            return self.plain(value)
        hint_args = hint if isinstance(hint, dict) else {}
        class_name = value["class_name"]
        config = value.get("config") or {}
        classes = self.cat.namespace(namespace)["classes"]
        entry = classes.get(class_name)
        if entry is None:
            raise fail("unknown-object", f"{self.where}: '{class_name}' is not an allowed {namespace} class",
                       file=self.where)
        args = {}
        for key, arg in config.items():
            if key == "name":
                continue
            if namespace == "optimizers" and key == "learning_rate" and _is_serialized(arg):
                args[key] = self.object_value("schedules", arg, hint_args.get(key))
                continue
            arg = self.plain(arg)
            if namespace in ("optimizers", "schedules") and isinstance(arg, float):
                arg = f32(arg)  # an optimizer keeps its hyperparameters as float32 variables
            default = entry["args"].get(key, {}).get("default", _MISSING)
            if default is not _MISSING and _same(arg, default) and key not in hint_args:
                continue
            if key not in entry["args"]:
                continue  # a value get_config() records that the constructor does not take
            args[key] = arg
        if namespace == "optimizers" and isinstance(config.get("name"), str) \
                and not _auto_name(config["name"], class_name):
            args["name"] = config["name"]
        short = hint if isinstance(hint, str) and self.cat.object_class(namespace, hint) == class_name \
            else self._short_name(namespace, class_name)
        return short if not args and not isinstance(hint, dict) else {"type": class_name, **args}

    def _short_name(self, namespace: str, class_name: str) -> str:
        aliases = self.cat.namespace(namespace).get("aliases", {})
        preferred = snake(class_name)
        if aliases.get(preferred) == class_name:
            return preferred
        return class_name

    def plain(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.plain(v) for v in value]
        if isinstance(value, dict):
            if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(value.get("config"), dict):
                return value["config"].get("name")
            if value.get("class_name") == "__tuple__":
                return [self.plain(v) for v in value.get("config", {}).get("value", [])]
            return {k: self.plain(v) for k, v in value.items()}
        return value

    def layer_args(self, class_name: str, config: dict, *, keep_name: bool, hint: dict | None = None) -> dict:
        """The spec arguments of a layer: its config less the name and Keras' defaults (those the ``hint``, a
        graphspec-built archive's spec of the node, wrote are kept, so the spec reads as it was written)."""
        hint = hint if isinstance(hint, dict) and hint.get("type") == class_name else {}
        entry = self.cat.layer(class_name)
        if entry is None or "denied" in entry:
            raise fail("unknown-layer", f"{self.where}: layer '{config.get('name')}' is a '{class_name}', which "
                       "graphspec cannot build" + (f" ({entry['denied']})" if entry else ""),
                       "if it comes from your own code, enable its plugin: --plugin MODULE (docs/plugins.md)",
                       file=self.where)
        known = entry["args"]
        args: dict[str, Any] = {}
        for key, value in config.items():
            if key == "name":
                if keep_name:
                    args["name"] = value
                continue
            namespace = nested_namespace(key)
            if key in NESTED_LAYER_ARGS and isinstance(value, dict) and "class_name" in value:
                value = self.nested_layer(value, hint.get(key))
            elif namespace is not None and namespace != "activations":
                value = self.object_value(namespace, value, hint.get(key))
            else:
                value = self.plain(value)
            if key not in known:
                continue  # recorded by get_config() but not a constructor argument (e.g. build state)
            if key in hint:
                args[key] = hint[key] if equivalent(hint[key], value) else value
                continue
            default = known[key].get("default", _MISSING)
            if default is not _MISSING and _same(value, default, key):
                continue
            if key == "dtype" and value == "float32":
                continue  # the default policy
            if key == "data_format" and value == "channels_last" and default is None:
                continue  # Keras' image_data_format, written out by get_config()
            if key == "strides" and default is None and value == self.plain(config.get("pool_size")):
                continue  # pooling: strides default to the pool size
            if key == "value_dim" and default is None and value == config.get("key_dim"):
                continue  # MultiHeadAttention: value_dim defaults to key_dim
            args[key] = short_size(key, value)
        return args

    def nested_layer(self, item: dict, hint: Any = None) -> dict:
        class_name = item["class_name"]
        config = dict(item.get("config") or {})
        name = config.get("name")
        args = self.layer_args(class_name, config, keep_name=False, hint=hint if isinstance(hint, dict) else None)
        if isinstance(name, str) and not _auto_name(name, class_name):
            args["name"] = name
        return {"type": class_name, **args}


_MISSING = object()
ALIASES = {"abs": "absolute", "hard_swish": "hard_silu", "swish": "silu"}
"""Names Keras resolves to the same function or op class (the config records the second)."""
_SIZE_ARGS = {"kernel_size", "strides", "pool_size", "dilation_rate", "size"}


def short_size(key: str, value: Any) -> Any:
    """``[3, 3]`` as ``3`` for a size Keras expands from one int."""
    if key in _SIZE_ARGS and isinstance(value, list) and len(value) > 1 and all(
            isinstance(v, int) and not isinstance(v, bool) and v == value[0] for v in value):
        return value[0]
    return value


def equivalent(written: Any, value: Any) -> bool:
    """Whether a spec's spelling ``written`` gives the config's ``value`` (``3`` for ``[3, 3]``, aliases)."""
    if written == value:
        return True
    if isinstance(written, str) and isinstance(value, str):
        return ALIASES.get(written) == value
    if isinstance(written, int) and not isinstance(written, bool) and isinstance(value, list):
        return bool(value) and all(equivalent(written, v) for v in value)
    if isinstance(written, list) and isinstance(value, list) and len(written) == len(value):
        return all(equivalent(a, b) for a, b in zip(written, value))
    if isinstance(written, (int, float)) and isinstance(value, (int, float)) and not isinstance(written, bool):
        return float(written) == float(value) or f32(float(written)) == f32(float(value))
    return False


def _auto_name(name: str, class_name: str) -> bool:
    """Whether ``name`` is the one Keras gives a layer of this class by itself (``dense``, ``dense_3``)."""
    base = snake(class_name)
    return name == base or re.fullmatch(re.escape(base) + r"_[0-9]+", name) is not None


def _same(value: Any, default: Any, key: str = "") -> bool:
    if value == default:
        return True
    if key in ("activation", "recurrent_activation") and value == "linear" and default is None:
        return True
    if isinstance(value, list) and not isinstance(default, list) and value and all(v == default for v in value):
        return True  # Keras standardizes 1 to (1, 1)
    if isinstance(value, list) and isinstance(default, list) and len(value) == len(default):
        return all(_same(a, b) for a, b in zip(value, default))
    if isinstance(value, str) and isinstance(default, str) and nested_namespace(key) not in (None, "activations"):
        ns = catalogue().namespace(nested_namespace(key))
        resolve = lambda n: ns["classes"].get(n) and n or ns.get("aliases", {}).get(n, n)  # noqa: E731
        return resolve(value) == resolve(default)
    return False
