"""Rules for core, activation, regularization, embedding and preprocessing layers."""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo


def _last_dim(call: LayerCall, x: TensorInfo) -> int:
    call.require_rank(x, min_rank=2)
    features = x.shape[-1]
    if features is None:
        raise ShapeError(f"{call.layer_type} needs a known last dimension (the feature axis), got shape {x}",
                         hint="give the last axis a size in the input's shape")
    return features


@rule("Dense")
def dense(call: LayerCall) -> RuleResult | None:
    x = call.input
    units = call.positive("units")
    if call.args.get("quantization_config") is not None:
        return None  # quantized weights: Keras knows their layout
    features = _last_dim(call, x)
    bias = units if call.arg("use_bias", True) else 0
    out = TensorInfo(x.shape[:-1] + (units,), call.dtype())
    rank = call.args.get("lora_rank")
    if rank:
        # LoRA freezes the kernel and trains two low-rank factors (features x r) and (r x units).
        return RuleResult(out, rank * (features + units) + bias, features * units)
    return RuleResult(out, features * units + bias)


@rule("Embedding")
def embedding(call: LayerCall) -> RuleResult | None:
    x = call.input
    input_dim, output_dim = call.positive("input_dim"), call.positive("output_dim")
    if call.args.get("quantization_config") is not None:
        return None
    out = TensorInfo(x.shape + (output_dim,), call.dtype())
    rank = call.args.get("lora_rank")
    if rank:
        return RuleResult(out, rank * (input_dim + output_dim), input_dim * output_dim)
    return RuleResult(out, input_dim * output_dim)


@rule("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "AlphaDropout", "GaussianDropout",
      "GaussianNoise", "ActivityRegularization", "Masking")
def same_shape(call: LayerCall) -> RuleResult:
    """Element-wise layers: the output has the input's shape and the layer's compute dtype."""
    x = call.input
    if call.layer_type == "Softmax":
        _check_axes(call, x, call.args.get("axis", -1))
    return RuleResult(TensorInfo(x.shape, call.dtype()))


@rule("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")
def spatial_dropout(call: LayerCall) -> RuleResult:
    x = call.input
    call.require_rank(x, int(call.layer_type[-2]) + 2)
    if call.layer_type != "SpatialDropout1D":
        call.data_format()
    return RuleResult(TensorInfo(x.shape, call.dtype()))


@rule("Identity")
def identity(call: LayerCall) -> RuleResult:
    x = call.input
    return RuleResult(TensorInfo(x.shape, call.passthrough_dtype(x)))


@rule("PReLU")
def prelu(call: LayerCall) -> RuleResult:
    x = call.input
    shared = call.arg("shared_axes") or []
    shared = [shared] if isinstance(shared, int) else list(shared)
    dims = list(x.shape[1:])
    for axis in shared:
        if not isinstance(axis, int) or not 1 <= axis <= len(dims):
            raise ArgumentError(f"PReLU: shared_axes must name axes 1..{len(dims)} of input {x}, got {shared}",
                             argument="shared_axes")
        dims[axis - 1] = 1
    if any(d is None for d in dims):
        unknown = [i + 1 for i, d in enumerate(dims) if d is None]
        raise ShapeError(f"PReLU learns one slope per input position and needs known sizes; input {x} has unknown "
                         f"axes {unknown}", argument="shared_axes",
                         hint=f"share the slope over those axes, e.g. shared_axes: {unknown}")
    return RuleResult(TensorInfo(x.shape, call.dtype()), math.prod(dims))


@rule("Rescaling")
def rescaling(call: LayerCall) -> RuleResult:
    return RuleResult(TensorInfo(call.input.shape, call.dtype()))


def _check_axes(call: LayerCall, x: TensorInfo, axis) -> list[int]:
    """Axes normalized to 0..rank-1; out-of-range axes are an error of the ``axis`` argument."""
    axes = [] if axis is None else [axis] if isinstance(axis, int) else list(axis)
    for a in axes:
        if not isinstance(a, int) or not -x.rank <= a < x.rank:
            raise ShapeError(f"{call.layer_type}: axis {a} is out of range for input {x} (rank {x.rank})",
                             argument="axis", hint=f"axes go from {-x.rank} to {x.rank - 1}; -1 is the last")
    return sorted({a % x.rank for a in axes})


@rule("Normalization")
def normalization(call: LayerCall) -> RuleResult:
    x = call.input
    keep = _check_axes(call, x, call.args.get("axis", -1))
    unknown = [a for a in keep if x.shape[a] is None]
    if unknown:
        raise ShapeError(f"Normalization keeps statistics per position of axis {unknown}, which is unknown in "
                         f"input {x}", argument="axis")
    has_mean, has_variance = call.args.get("mean") is not None, call.args.get("variance") is not None
    if has_mean != has_variance:
        raise ArgumentError("Normalization needs both mean and variance, or neither (to adapt them from data)",
                         argument="mean" if has_variance else "variance")
    # Without given statistics Keras keeps mean and variance of the kept axes' sizes, and a count.
    size = math.prod(x.shape[a] for a in keep)  # type: ignore[misc]
    non_trainable = 0 if has_mean else 2 * size + 1
    return RuleResult(TensorInfo(x.shape, call.dtype()), 0, non_trainable)
