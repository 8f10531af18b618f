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


def _einsum_shapes(call: LayerCall, x: TensorInfo):
    """(kernel shape, bias shape or None, output shape): a port of Keras' ``_analyze_einsum_string``."""
    import re

    equation = call.arg("equation")
    if not isinstance(equation, str):
        raise ArgumentError(f"EinsumDense: equation must be a string such as 'ab,bc->ac', got {equation!r}",
                            argument="equation")
    replaced = equation.replace("...", "0")
    left_elided = False
    match = re.fullmatch("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)", replaced)
    if match is None:
        match = re.fullmatch("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)", replaced)
        left_elided = match is not None
    if match is None:
        match = re.fullmatch("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0", replaced)
    if match is None:
        raise ArgumentError(f"EinsumDense: equation {equation!r} is not of the form 'X,Y->Z', '...X,Y->...Z' or "
                            "'X...,Y->Z...'", argument="equation")
    input_spec, weight_spec, output_spec = match.groups()
    shape = list(x.shape)
    elided = len(shape) - len(input_spec)
    if elided < 0 or (elided > 0 and "0" not in replaced):
        raise ShapeError(f"EinsumDense: equation {equation!r} names {len(input_spec)} input axes, the input {x} has "
                         f"{len(shape)}", argument="equation", code="rank-mismatch")
    raw = call.arg("output_shape")
    output = [raw] if isinstance(raw, int) or raw is None else list(raw) if isinstance(raw, (list, tuple)) else [raw]
    for size in output:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ArgumentError(f"EinsumDense: output_shape must be a positive integer or a list of positive integers "
                                f"(null for a size known at run time), got {raw!r}", argument="output_shape")
    output.insert(0, shape[0])
    if elided > 0 and left_elided:
        for i in range(1, elided):
            output.insert(1, shape[i])
    elif elided > 0:
        output.extend(shape[len(shape) - elided:])
    if left_elided:
        in_map = {d: i + elided - len(shape) for i, d in enumerate(input_spec)}
        out_map = {d: i + elided for i, d in enumerate(output_spec)}
    else:
        in_map = {d: i for i, d in enumerate(input_spec)}
        out_map = {d: i for i, d in enumerate(output_spec)}
    try:
        for d in input_spec:
            if d in out_map and output[out_map[d]] is not None and output[out_map[d]] != shape[in_map[d]]:
                raise ShapeError(f"EinsumDense: axis '{d}' is {shape[in_map[d]]} in the input {x} but "
                                 f"{output[out_map[d]]} in output_shape", argument="output_shape")
        for d in output_spec:
            if d not in input_spec and d not in weight_spec:
                raise ArgumentError(f"EinsumDense: output axis '{d}' appears in neither the input nor the weight "
                                    "spec", argument="equation")
        kernel = []
        for d in weight_spec:
            if d in out_map:
                kernel.append(output[out_map[d]])
            elif d in in_map:
                kernel.append(shape[in_map[d]])
            else:
                raise ArgumentError(f"EinsumDense: weight axis '{d}' appears in neither the input nor the output "
                                    "spec", argument="equation")
        bias = None
        bias_axes = call.arg("bias_axes")
        if bias_axes is not None:
            offset = elided if left_elided else 0
            sizes = {c: output[i + offset] for i, c in enumerate(output_spec)}
            for c in bias_axes:
                if c not in output_spec:
                    raise ArgumentError(f"EinsumDense: bias axis '{c}' is not in the output spec '{output_spec}'",
                                        argument="bias_axes")
            first = min(output_spec.find(c) for c in bias_axes)
            bias = [sizes[c] if c in bias_axes else 1 for c in output_spec[first:]]
            if not left_elided:
                bias.extend([1] * elided)
    except IndexError:
        raise ShapeError(f"EinsumDense: output_shape {raw!r} does not give a size to every output axis of "
                         f"{equation!r}", argument="output_shape") from None
    if any(d is None for d in kernel) or (bias and any(d is None for d in bias)):
        raise ShapeError(f"EinsumDense: the weights' axes need known sizes; input {x}, output_shape {raw!r}",
                         argument="output_shape", hint="give every weight axis a size in output_shape or the input")
    return kernel, bias, output


@rule("EinsumDense")
def einsum_dense(call: LayerCall) -> RuleResult | None:
    x = call.input
    if call.args.get("quantization_config") is not None:
        return None
    kernel, bias, output = _einsum_shapes(call, x)
    kernel_size = math.prod(kernel)
    bias_size = math.prod(bias) if bias is not None else 0
    out = TensorInfo(tuple(output), call.dtype())
    rank = call.args.get("lora_rank")
    if rank:
        lora = math.prod(kernel[:-1]) * rank + rank * kernel[-1]
        return RuleResult(out, lora + bias_size, kernel_size)
    return RuleResult(out, kernel_size + bias_size)
