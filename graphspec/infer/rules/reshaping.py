"""Rules for reshaping layers: Flatten, Reshape, Permute, RepeatVector, ZeroPadding, Cropping, UpSampling."""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.rules.convolution import spatial_rank
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo, product


@rule("Flatten")
def flatten(call: LayerCall) -> RuleResult:
    x = call.input
    call.data_format()
    rest = x.shape[1:]
    size = 1 if not rest else product(rest)
    return RuleResult(TensorInfo((x.shape[0], size), call.passthrough_dtype(x)))


@rule("Reshape")
def reshape(call: LayerCall) -> RuleResult:
    x = call.input
    raw = call.arg("target_shape")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) for d in raw):
        raise ArgumentError(f"Reshape: target_shape must be a list of integers, got {raw!r}", argument="target_shape")
    target = list(raw)
    if target.count(-1) > 1 or any(d < -1 for d in target):
        raise ArgumentError(f"Reshape: target_shape may hold one -1 and otherwise sizes >= 0, got {target}",
                         argument="target_shape")
    known = x.shape[1:]
    total = product(known)
    if total is None:
        # Keras cannot check the size when a dimension is unknown: -1 stays unknown.
        return RuleResult(TensorInfo((x.shape[0], *(None if d == -1 else d for d in target)),
                                     call.passthrough_dtype(x)))
    if -1 in target:
        rest = math.prod(d for d in target if d != -1)
        if rest == 0 or total % rest:
            raise ShapeError(f"cannot reshape {x} ({total} values per sample) into {tuple(target)}: "
                             f"{total} is not divisible by {rest}", argument="target_shape",
                             hint="the product of target_shape's known entries must divide the input's size "
                                  "per sample")
        target[target.index(-1)] = total // rest
    elif math.prod(target) != total:
        raise ShapeError(f"cannot reshape {x} ({total} values per sample) into {tuple(target)} "
                         f"({math.prod(target)} values)", argument="target_shape",
                         hint="the product of target_shape must equal the input's size per sample "
                              f"({total}); use -1 for one entry to have it computed")
    return RuleResult(TensorInfo((x.shape[0], *target), call.passthrough_dtype(x)))


@rule("Permute")
def permute(call: LayerCall) -> RuleResult:
    x = call.input
    dims = call.arg("dims")
    if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, len(dims) + 1)):
        raise ArgumentError(f"Permute: dims must be a permutation of 1..N (the batch axis 0 stays first), got {dims!r}",
                         argument="dims")
    if len(dims) != x.rank - 1:
        raise ShapeError(f"Permute with dims {list(dims)} expects a rank-{len(dims) + 1} input, got shape {x} "
                         f"(rank {x.rank})", argument="dims", code="rank-mismatch",
                         hint=f"list each of the {x.rank - 1} non-batch axes once, e.g. "
                              f"{list(range(x.rank - 1, 0, -1))}")
    return RuleResult(TensorInfo((x.shape[0], *(x.shape[d] for d in dims)), call.passthrough_dtype(x)))


@rule("RepeatVector")
def repeat_vector(call: LayerCall) -> RuleResult:
    x = call.input
    n = call.positive("n")
    call.require_rank(x, 2)
    return RuleResult(TensorInfo((x.shape[0], n, x.shape[1]), call.dtype()))


def _pairs(call: LayerCall, name: str, rank: int, default) -> list[tuple[int, int]]:
    """``padding``/``cropping`` as one (before, after) pair per spatial axis (Keras' accepted forms)."""
    value = call.args.get(name)
    if value is None:
        value = default
    bad = ArgumentError(f"{call.layer_type}: '{name}' must be an integer, a list of {rank} integers or a list of "
                     f"{rank} [before, after] pairs, got {value!r}", argument=name)
    if rank == 1:
        pair = call.ints(name, 2, allow_zero=True, value=value)
        return [(pair[0], pair[1])]
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise bad
        return [(value, value)] * rank
    if not isinstance(value, (list, tuple)) or len(value) != rank:
        raise bad
    return [tuple(call.ints(name, 2, allow_zero=True, value=v)) for v in value]  # type: ignore[misc]


def _spatial_axes(call: LayerCall, x: TensorInfo, rank: int) -> list[int]:
    call.require_rank(x, rank + 2)
    has_format = rank > 1 or call.layer_type == "ZeroPadding1D"  # Cropping1D, UpSampling1D: channels last
    first = has_format and call.data_format() == "channels_first"
    return list(range(2, rank + 2)) if first else list(range(1, rank + 1))


@rule("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def zero_padding(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    pads = _pairs(call, "padding", rank, 1)
    out = list(x.shape)
    for axis, (before, after) in zip(_spatial_axes(call, x, rank), pads):
        if out[axis] is not None:
            out[axis] += before + after
    return RuleResult(TensorInfo(tuple(out), call.dtype()))


@rule("Cropping1D", "Cropping2D", "Cropping3D")
def cropping(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    crops = _pairs(call, "cropping", rank, {1: 1, 2: 0, 3: 1}[rank])
    out = list(x.shape)
    for axis, (before, after) in zip(_spatial_axes(call, x, rank), crops):
        if out[axis] is None:
            continue
        if before + after >= out[axis]:
            raise ShapeError(f"{call.layer_type} removes {before} + {after} from an axis of size {out[axis]} "
                             f"(input {x}): nothing would be left", argument="cropping",
                             hint="crop less, or check the input's size")
        out[axis] -= before + after
    return RuleResult(TensorInfo(tuple(out), call.dtype()))


@rule("UpSampling1D", "UpSampling2D", "UpSampling3D")
def up_sampling(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    if rank == 1:
        sizes: tuple = (call.positive("size"),)
    else:
        sizes = call.ints("size", rank)
    out = list(x.shape)
    for axis, size in zip(_spatial_axes(call, x, rank), sizes):
        if out[axis] is not None:
            out[axis] *= size
    return RuleResult(TensorInfo(tuple(out), call.dtype()))

