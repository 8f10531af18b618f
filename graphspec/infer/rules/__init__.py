"""Shape rules: one small pure function per Keras layer kind.

A rule takes a :class:`LayerCall` and returns a :class:`RuleResult`, or raises
:class:`ShapeError`. It knows nothing of nodes or files: the graph walker adds
that context. Layers without a rule get their shapes from Keras at build time.
"""

from __future__ import annotations

from typing import Callable

from graphspec.infer.tensor import LayerCall, RuleResult

Rule = Callable[[LayerCall], RuleResult]
RULES: dict[str, Rule] = {}


def rule(*layer_types: str) -> Callable[[Rule], Rule]:
    """Register a function as the shape rule of the given canonical layer class names."""

    def register(function: Rule) -> Rule:
        for layer_type in layer_types:
            RULES[layer_type] = function
        return function

    return register


def _load_rule_modules() -> None:
    from graphspec.infer.rules import attention, convolution, core, merge, normalization, recurrent  # noqa: F401


_load_rule_modules()
