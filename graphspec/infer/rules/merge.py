"""Rules for merge layers (Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Dot).

They follow ``keras/src/layers/merging``: element-wise merges broadcast like Keras
(aligned from the last axis, size 1 stretches, an unknown size stays unknown);
Concatenate needs equal sizes on every axis but the concatenation axis, where an
unknown size matches anything.
"""

from __future__ import annotations

from graphspec.infer.rules import rule
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo


def _inputs(call: LayerCall, *, minimum: int = 1, exactly: int | None = None) -> list[TensorInfo]:
    tensors = call.input_list
    if exactly is not None and len(tensors) != exactly:
        raise ShapeError(f"{call.layer_type} takes exactly {exactly} inputs, got {len(tensors)}",
                         hint=f"give 'input:' a list of {exactly} references", code="wrong-input-count")
    if len(tensors) < minimum:
        raise ShapeError(f"{call.layer_type} needs at least {minimum} inputs, got {len(tensors)}",
                         hint="give 'input:' a list of the tensors to merge", code="wrong-input-count")
    return tensors


def _batch(tensors: list[TensorInfo], call: LayerCall):
    sizes = {t.shape[0] for t in tensors if t.rank} - {None}
    if len(sizes) > 1:
        raise ShapeError(f"{call.layer_type} cannot merge tensors of different batch sizes: "
                         + ", ".join(str(t) for t in tensors))
    return sizes.pop() if sizes else None


def _listing(tensors: list[TensorInfo]) -> str:
    return ", ".join(str(t) for t in tensors)


def _broadcast(call: LayerCall, tensors: list[TensorInfo], shape1, shape2):
    """Keras' ``_compute_elemwise_op_output_shape`` (shapes without the batch axis)."""
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return tuple(shape1)
    out = list(shape1[: len(shape1) - len(shape2)])
    offset = len(shape1) - len(shape2)
    for k, (i, j) in enumerate(zip(shape1[offset:], shape2)):
        if (i is None) != (j is None) and (i or j) > 1:
            # Keras builds it (the size is unknown), but the model runs only where the unknown size
            # happens to equal the known one: check cannot promise that.
            axis = offset + k + 1 - (len(shape1) + 1)
            raise ShapeError(
                f"{call.layer_type}: axis {axis} has size {i or j} in one input and a size known only when the "
                f"model runs in another: {_listing(tensors)}", code="unknown-size-broadcast",
                hint="they broadcast only if the sizes happen to be equal: give that axis a size in the input's "
                     "shape, or Reshape to size 1 where it should broadcast")
        if i is None or j is None:
            out.append(None)
        elif i == 1:
            out.append(j)
        elif j == 1 or i == j:
            out.append(i)
        else:
            axis = offset + k + 1 - (len(shape1) + 1)
            raise ShapeError(
                f"{call.layer_type} needs inputs of the same shape; axis {axis} has size {i} in one and {j} in "
                f"another: {_listing(tensors)}",
                hint=_merge_hint(axis, i, j, len(shape1) + 1))
    return tuple(out)


def _merge_hint(axis: int, i: int, j: int, rank: int) -> str:
    if axis == -1:
        return (f"the feature/channel counts differ ({i} vs {j}): project one branch to the other's size first "
                f"(a Dense with units: {max(i, j)}, or a 1x1 Conv with filters: {max(i, j)})")
    return ("the spatial sizes differ: make the branches agree (same strides and padding: same), "
            "or resize one of them (pooling, cropping, padding)")


@rule("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def elementwise(call: LayerCall) -> RuleResult:
    tensors = _inputs(call, exactly=2 if call.layer_type == "Subtract" else None)
    batch = _batch(tensors, call)
    shape = tensors[0].shape[1:]
    for t in tensors[1:]:
        shape = _broadcast(call, tensors, shape, t.shape[1:])
    return RuleResult(TensorInfo((batch, *shape), call.dtype()))


@rule("Concatenate")
def concatenate(call: LayerCall) -> RuleResult:
    tensors = _inputs(call)
    raw_axis = call.args.get("axis", -1)
    rank = tensors[0].rank
    if any(t.rank != rank for t in tensors):
        raise ShapeError(f"Concatenate needs inputs of the same rank, got {_listing(tensors)}",
                         hint="Flatten or Reshape the inputs to the same number of axes first",
                         code="rank-mismatch")
    if not isinstance(raw_axis, int) or not -rank <= raw_axis < rank:
        raise ShapeError(f"Concatenate: axis {raw_axis!r} is out of range for inputs of rank {rank}",
                         argument="axis", hint=f"axes go from {-rank} to {rank - 1}; -1 is the last")
    axis = raw_axis % rank
    for i in range(rank):
        if i == axis:
            continue
        sizes = {t.shape[i] for t in tensors if t.shape[i] is not None}
        if len(sizes) > 1:
            where = "the batch axis" if i == 0 else f"axis {i}"
            raise ShapeError(
                f"Concatenate (axis={raw_axis}) needs equal sizes on every other axis, but {where} differs: "
                f"{_listing(tensors)}",
                hint="make the branches agree (same strides, pooling and padding: same), crop or pad one of them, "
                     "or concatenate along another axis")
        if i and sizes and any(t.shape[i] is None for t in tensors):
            raise ShapeError(
                f"Concatenate (axis={raw_axis}): axis {i} has size {sizes.pop()} in one input and a size known only "
                f"when the model runs in another: {_listing(tensors)}", code="unknown-size-broadcast",
                hint="the model runs only if the sizes happen to be equal: give that axis a size in the input's "
                     "shape")
    out = list(tensors[0].shape)
    along = [t.shape[axis] for t in tensors]
    out[axis] = None if any(d is None for d in along) else sum(along)  # type: ignore[arg-type]
    return RuleResult(TensorInfo(tuple(out), call.dtype()))


@rule("Dot")
def dot(call: LayerCall) -> RuleResult:
    a, b = _inputs(call, exactly=2)
    raw = call.arg("axes")
    if isinstance(raw, int) and not isinstance(raw, bool):
        axes = [raw % a.rank, raw % b.rank] if raw < 0 else [raw, raw]
    elif isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(v, int) for v in raw):
        axes = [raw[0] % a.rank if raw[0] < 0 else raw[0], raw[1] % b.rank if raw[1] < 0 else raw[1]]
    else:
        raise ArgumentError(f"Dot: axes must be an integer or a list of two integers, got {raw!r}", argument="axes")
    for axis, t in zip(axes, (a, b)):
        if not 1 <= axis < t.rank:
            raise ShapeError(f"Dot: axis {axis} is not a non-batch axis of input {t}", argument="axes",
                             hint=f"axes of that input go from 1 to {t.rank - 1} (or negative from the end)")
    if a.shape[axes[0]] != b.shape[axes[1]]:
        raise ShapeError(f"Dot takes the dot product along axis {axes[0]} of {a} and axis {axes[1]} of {b}, whose "
                         f"sizes differ ({a.shape[axes[0]]} vs {b.shape[axes[1]]})", argument="axes",
                         hint="the two axes must have the same (known) size")
    first = list(a.shape)
    second = list(b.shape)
    first.pop(axes[0])
    second.pop(axes[1])
    second.pop(0)
    out = first + second
    if len(out) == 1:
        out.append(1)
    return RuleResult(TensorInfo(tuple(out), call.dtype()))

