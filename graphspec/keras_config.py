"""What a saved Keras config may name: one policy for ``model:`` nodes and ``graphspec import``.

A ``.keras`` archive's ``config.json`` is read as plain JSON (never by Keras' deserializers)
and walked iteratively (no recursion limit to hit); the first object that is not safe to hand
to Keras is reported. Keras' ``safe_mode`` is the second line of defence, not the only one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MAX_CONFIG_BYTES = 64 * 1024 * 1024
"""A ``config.json`` larger than this (uncompressed) is refused."""
UNSAFE_CLASSES = frozenset({"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"})
"""Keras' own classes that run code or load files."""
VOCABULARY_LAYERS = ("StringLookup", "IntegerLookup", "TextVectorization")
"""Layers that read their vocabulary from a file when it is given as a path."""
KERAS_MODULES = ("keras",)
LEGACY_MODULES = ("keras", "tf_keras")
"""Module roots of Keras' own classes; Keras 2 configs (``tf_keras``) only where Keras 3 reads them."""


@dataclass(frozen=True)
class Refusal:
    """Why a config cannot be used: ``item`` is the offending object of the config."""

    kind: Literal["unsafe-class", "foreign-class", "registered-object", "vocabulary-file"]
    item: dict
    class_name: str

    @property
    def module(self) -> Any:
        return self.item.get("module")

    @property
    def registered_name(self) -> Any:
        return self.item.get("registered_name")

    @property
    def layer_name(self) -> str:
        config = self.item.get("config")
        name = self.item.get("name") or (config.get("name") if isinstance(config, dict) else None)
        return str(name)


def is_op(item: dict) -> bool:
    """Whether a config object is a ``keras.ops`` operation (Keras' own, never a layer)."""
    module = item.get("module")
    return isinstance(module, str) and module.startswith("keras.src.ops.")


def _own_module(module: Any, roots: tuple[str, ...]) -> bool:
    return isinstance(module, str) and any(module == root or module.startswith(root + ".") for root in roots)


def first_refusal(config: Any, *, allowed_classes: frozenset[str] | set[str] = frozenset(),
                  module_roots: tuple[str, ...] = KERAS_MODULES) -> Refusal | None:
    """The first object of ``config`` naming a class that runs code, reads files or is not Keras' own
    (``allowed_classes``: enabled plugins' layers), or None when every object is safe."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        class_name = item.get("class_name")
        if isinstance(class_name, str) and class_name != "__keras_tensor__":
            allowed = class_name in allowed_classes
            if class_name in UNSAFE_CLASSES:
                return Refusal("unsafe-class", item, class_name)
            module = item.get("module")
            if module is not None and not allowed and not _own_module(module, module_roots):
                return Refusal("foreign-class", item, class_name)
            if item.get("registered_name") not in (None, class_name) and not allowed and not is_op(item):
                return Refusal("registered-object", item, class_name)
            layer_config = item.get("config")
            if class_name in VOCABULARY_LAYERS and isinstance(layer_config, dict) \
                    and isinstance(layer_config.get("vocabulary"), str):
                return Refusal("vocabulary-file", item, class_name)
        stack.extend(item.values())
    return None
