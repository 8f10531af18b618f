"""Rules for BatchNormalization, LayerNormalization, GroupNormalization, UnitNormalization, RMSNormalization."""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.rules.core import _check_axes
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo


def _size(call: LayerCall, x: TensorInfo, axes: list[int]) -> int:
    dims = [x.shape[a] for a in axes]
    if any(d is None for d in dims):
        raise ShapeError(f"{call.layer_type} learns one scale per position of axis "
                         f"{axes[0] if len(axes) == 1 else axes}, which has no known size in input {x}",
                         argument="axis", hint="give that axis a size, or normalize over another axis")
    return math.prod(dims)  # type: ignore[arg-type]


def _int_axis(call: LayerCall, x: TensorInfo) -> list[int]:
    axis = call.args.get("axis", -1)
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise ArgumentError(f"{call.layer_type}: axis must be one integer, got {axis!r}", argument="axis")
    return _check_axes(call, x, axis)


@rule("BatchNormalization")
def batch_norm(call: LayerCall) -> RuleResult:
    x = call.input
    size = _size(call, x, _int_axis(call, x))
    trainable = size * (int(bool(call.arg("center", True))) + int(bool(call.arg("scale", True))))
    # moving mean and variance; batch renormalization adds a moving stddev, renorm mean and stddev.
    non_trainable = size * (5 if call.arg("renorm") else 2)
    return RuleResult(TensorInfo(x.shape, call.dtype()), trainable, non_trainable)


@rule("LayerNormalization")
def layer_norm(call: LayerCall) -> RuleResult:
    x = call.input
    axes = _check_axes(call, x, call.args.get("axis", -1))
    scale = bool(call.arg("scale", True)) or bool(call.arg("rms_scaling"))
    center = bool(call.arg("center", True)) and not call.arg("rms_scaling")
    if not (scale or center):  # no weights: any sizes will do
        return RuleResult(TensorInfo(x.shape, call.dtype()))
    return RuleResult(TensorInfo(x.shape, call.dtype()), _size(call, x, axes) * (int(scale) + int(center)))


@rule("RMSNormalization")
def rms_norm(call: LayerCall) -> RuleResult:
    x = call.input
    size = _size(call, x, _check_axes(call, x, call.args.get("axis", -1)))
    return RuleResult(TensorInfo(x.shape, call.dtype()), size)


@rule("GroupNormalization")
def group_norm(call: LayerCall) -> RuleResult:
    x = call.input
    (axis,) = _int_axis(call, x)
    channels = _size(call, x, [axis])
    groups = call.args.get("groups", 32)
    if groups == -1:
        groups = channels
    if not isinstance(groups, int) or isinstance(groups, bool) or groups <= 0:
        raise ArgumentError(f"GroupNormalization: groups must be a positive integer (or -1 for one per channel), "
                         f"got {groups!r}", argument="groups")
    if channels < groups or channels % groups:
        raise ShapeError(f"GroupNormalization: groups={groups} must divide the {channels} channels of axis "
                         f"{axis} (input {x})", argument="groups",
                         hint=f"choose groups among {_divisors(channels)}")
    params = channels * (int(bool(call.arg("center", True))) + int(bool(call.arg("scale", True))))
    return RuleResult(TensorInfo(x.shape, call.dtype()), params)


def _divisors(n: int) -> str:
    """The divisors of ``n`` for a hint: the 4 smallest and 4 largest, found in O(sqrt(n)) steps (n < 2**31)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    found = sorted(set(small) | {n // d for d in small})
    if len(found) > 8:
        found = found[:4] + found[-4:]
    return ", ".join(map(str, found))


@rule("UnitNormalization")
def unit_norm(call: LayerCall) -> RuleResult:
    x = call.input
    _check_axes(call, x, call.args.get("axis", -1))
    return RuleResult(TensorInfo(x.shape, call.dtype()))
