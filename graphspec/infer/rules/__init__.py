"""Shape rules: one small pure function per Keras layer kind.

A rule takes a :class:`LayerCall` and returns a :class:`RuleResult`, or raises
:class:`ShapeError`; it returns None where the shapes cannot be known before Keras
builds the layer (e.g. a wrapper around a layer without a rule). It knows nothing
of nodes or files: the graph walker adds that context. Layers without a rule get
their shapes from Keras at build time.

``tests/infer/test_rules_vs_keras.py`` checks every registered rule against Keras.
"""

from __future__ import annotations

from typing import Callable, Optional

from graphspec.infer.tensor import LayerCall, RuleResult

Rule = Callable[[LayerCall], Optional[RuleResult]]
RULES: dict[str, Rule] = {}


def rule(*layer_types: str) -> Callable[[Rule], Rule]:
    """Register a function as the shape rule of the given canonical layer class names."""

    def register(function: Rule) -> Rule:
        for layer_type in layer_types:
            RULES[layer_type] = function
        return function

    return register


def _load_rule_modules() -> None:
    from graphspec.infer.rules import (  # noqa: F401
        attention, convolution, core, merge, normalization, preprocessing, recurrent, reshaping)


_load_rule_modules()
