"""Rules for core, activation, regularization, reshaping and embedding layers."""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.tensor import LayerCall, RuleResult, ShapeError, TensorInfo


@rule("Dense")
def dense(call: LayerCall) -> RuleResult:
    x = call.input
    call.require_rank(x, min_rank=2)
    features = x.shape[-1]
    if features is None:
        raise ShapeError(f"Dense needs a known last dimension, got shape {x}",
                         hint="the last axis is the feature axis; give it a size in the input's shape")
    units = call.arg("units")
    params = features * units + (units if call.arg("use_bias") else 0)
    return RuleResult(TensorInfo(x.shape[:-1] + (units,), call.dtype()), params)


@rule("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "AlphaDropout", "GaussianDropout",
      "GaussianNoise", "ActivityRegularization", "Identity", "Masking", "SpatialDropout1D", "SpatialDropout2D",
      "SpatialDropout3D", "UnitNormalization")
def same_shape(call: LayerCall) -> RuleResult:
    x = call.input
    if call.layer_type.startswith("SpatialDropout"):
        call.require_rank(x, int(call.layer_type[-2]) + 2)
    return RuleResult(TensorInfo(x.shape, call.dtype() if x.dtype.startswith(("float", "bfloat")) else x.dtype))


@rule("PReLU")
def prelu(call: LayerCall) -> RuleResult:
    x = call.input
    shared = call.arg("shared_axes") or []
    shared = [shared] if isinstance(shared, int) else shared
    dims = list(x.shape[1:])
    for axis in shared:
        dims[axis - 1] = 1
    if any(d is None for d in dims):
        raise ShapeError(f"PReLU needs known dimensions (or shared_axes over the unknown ones), got {x}",
                         argument="shared_axes")
    return RuleResult(TensorInfo(x.shape, call.dtype()), math.prod(dims))


@rule("Flatten")
def flatten(call: LayerCall) -> RuleResult:
    x = call.input
    rest = x.shape[1:]
    size = None if any(d is None for d in rest) else math.prod(rest)
    return RuleResult(TensorInfo((x.shape[0], size), x.dtype))


@rule("Reshape")
def reshape(call: LayerCall) -> RuleResult:
    x = call.input
    target = list(call.arg("target_shape"))
    known = x.shape[1:]
    total = None if any(d is None for d in known) else math.prod(known)
    if target.count(-1) > 1:
        raise ShapeError("Reshape's target_shape may hold at most one -1", argument="target_shape")
    if -1 in target:
        rest = math.prod(d for d in target if d != -1)
        if total is not None:
            if rest == 0 or total % rest:
                raise ShapeError(f"cannot reshape {x} into {tuple(target)}: {total} values do not divide by {rest}",
                                 argument="target_shape")
            target[target.index(-1)] = total // rest
        else:
            target[target.index(-1)] = None
    elif total is not None and math.prod(target) != total:
        raise ShapeError(f"cannot reshape {x} ({total} values per sample) into {tuple(target)} "
                         f"({math.prod(target)} values)", argument="target_shape",
                         hint="the product of target_shape must equal the input's size per sample")
    return RuleResult(TensorInfo((x.shape[0], *target), x.dtype))


@rule("Permute")
def permute(call: LayerCall) -> RuleResult:
    x = call.input
    dims = list(call.arg("dims"))
    if sorted(dims) != list(range(1, x.rank)):
        raise ShapeError(f"Permute's dims must be a permutation of 1..{x.rank - 1} for input {x}", argument="dims")
    return RuleResult(TensorInfo((x.shape[0], *(x.shape[d] for d in dims)), x.dtype))


@rule("RepeatVector")
def repeat_vector(call: LayerCall) -> RuleResult:
    x = call.input
    call.require_rank(x, 2)
    return RuleResult(TensorInfo((x.shape[0], call.arg("n"), x.shape[1]), x.dtype))


@rule("Embedding")
def embedding(call: LayerCall) -> RuleResult:
    x = call.input
    input_dim, output_dim = call.arg("input_dim"), call.arg("output_dim")
    return RuleResult(TensorInfo(x.shape + (output_dim,), call.dtype()), input_dim * output_dim)


@rule("Rescaling")
def rescaling(call: LayerCall) -> RuleResult:
    return RuleResult(TensorInfo(call.input.shape, call.dtype()))


@rule("Normalization")
def normalization(call: LayerCall) -> RuleResult:
    x = call.input
    axis = call.arg("axis")
    axes = [] if axis is None else ([axis] if isinstance(axis, int) else list(axis))
    dims = [x.shape[a] for a in axes]
    # Keras keeps mean, variance (and count) as non-trainable weights of the kept axes' size.
    size = math.prod(d for d in dims if d is not None) if dims else 1
    non_trainable = 0 if call.arg("mean") is not None else 2 * size + 1
    return RuleResult(TensorInfo(x.shape, call.dtype()), 0, non_trainable)
