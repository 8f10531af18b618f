"""Rules for BatchNormalization, LayerNormalization and GroupNormalization."""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.tensor import LayerCall, RuleResult, ShapeError, TensorInfo


def _axes(call: LayerCall, x: TensorInfo) -> list[int]:
    axis = call.arg("axis")
    axes = [axis] if isinstance(axis, int) else list(axis)
    for a in axes:
        if not -x.rank <= a < x.rank:
            raise ShapeError(f"axis {a} is out of range for input {x}", argument="axis")
    return [a % x.rank for a in axes]


def _size(call: LayerCall, x: TensorInfo, axes: list[int]) -> int:
    dims = [x.shape[a] for a in axes]
    if any(d is None for d in dims):
        raise ShapeError(f"{call.layer_type} needs a known size on axis {axes}, got {x}", argument="axis")
    return math.prod(dims)


@rule("BatchNormalization")
def batch_norm(call: LayerCall) -> RuleResult:
    x = call.input
    size = _size(call, x, _axes(call, x))
    trainable = size * (int(bool(call.arg("center"))) + int(bool(call.arg("scale"))))
    return RuleResult(TensorInfo(x.shape, call.dtype()), trainable, 2 * size)


@rule("LayerNormalization")
def layer_norm(call: LayerCall) -> RuleResult:
    x = call.input
    size = _size(call, x, _axes(call, x))
    params = size * (int(bool(call.arg("center"))) + int(bool(call.arg("scale"))))
    return RuleResult(TensorInfo(x.shape, call.dtype()), params)
