"""Rules for merge layers (Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Dot)."""

from __future__ import annotations

from graphspec.infer.rules import rule
from graphspec.infer.tensor import LayerCall, RuleResult, ShapeError, TensorInfo


def _dims(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


@rule("Concatenate")
def concatenate(call: LayerCall) -> RuleResult:
    tensors = call.input_list
    if len(tensors) < 2:
        raise ShapeError("Concatenate needs at least two inputs", hint="give 'input:' a list of two or more")
    rank = tensors[0].rank
    if any(t.rank != rank for t in tensors):
        raise ShapeError("Concatenate inputs must have the same rank, got shapes "
                         + ", ".join(str(t) for t in tensors))
    axis = call.arg("axis")
    axis = axis % rank
    out = list(tensors[0].shape)
    for i in range(1, rank):
        if i == axis:
            continue
        sizes = {t.shape[i] for t in tensors if t.shape[i] is not None}
        if len(sizes) > 1:
            raise ShapeError(
                f"Concatenate (axis={call.arg('axis')}) needs equal sizes on every other axis; axis {i} differs: "
                + ", ".join(str(t) for t in tensors),
                hint="make the branches agree (same strides/padding), or resize one of them")
        out[i] = next(iter(sizes)) if sizes else None
    along = [t.shape[axis] for t in tensors]
    out[axis] = None if any(d is None for d in along) else sum(along)
    return RuleResult(TensorInfo(tuple(out), tensors[0].dtype))


@rule("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def elementwise(call: LayerCall) -> RuleResult:
    tensors = call.input_list
    if call.layer_type == "Subtract" and len(tensors) != 2:
        raise ShapeError(f"Subtract takes exactly two inputs, got {len(tensors)}")
    if len(tensors) < 2 and call.layer_type != "Add":
        raise ShapeError(f"{call.layer_type} needs at least two inputs")
    rank = max(t.rank for t in tensors)
    out: list = []
    for i in range(1, rank + 1):  # align from the last axis, like broadcasting
        sizes = [t.shape[-i] for t in tensors if i <= t.rank]
        known = {d for d in sizes if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(
                f"{call.layer_type} needs inputs of the same shape, got "
                + " and ".join(str(t) for t in tensors),
                hint="project one branch to the other's size first (e.g. a Dense or a 1x1 Conv)")
        if known:
            out.append(known.pop())
        elif any(d is None for d in sizes):
            out.append(None)
        else:
            out.append(1)
    out.reverse()
    out[0] = None if all(t.shape[0] is None for t in tensors) else out[0]
    return RuleResult(TensorInfo(tuple(out), tensors[0].dtype))
