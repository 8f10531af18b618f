"""Rules for convolution, pooling, padding, cropping and upsampling layers."""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.tensor import LayerCall, RuleResult, ShapeError, TensorInfo


def spatial_rank(layer_type: str) -> int:
    """1, 2 or 3, from the class name's ``1D``/``2D``/``3D`` suffix."""
    for rank in (1, 2, 3):
        if f"{rank}D" in layer_type:
            return rank
    raise ValueError(layer_type)


def as_tuple(value, rank: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(value)
    if len(value) != rank:
        raise ShapeError(f"'{name}' needs {rank} values, got {len(value)}", argument=name)
    return value


def split_channels(call: LayerCall, x: TensorInfo, rank: int):
    """(spatial dims, channels, channels_first?) of an N-D feature map."""
    call.require_rank(x, rank + 2)
    channels_first = call.arg("data_format") == "channels_first"
    if channels_first:
        return list(x.shape[2:]), x.shape[1], True
    return list(x.shape[1:-1]), x.shape[-1], False


def join_channels(batch, spatial, channels, channels_first: bool):
    return (batch, channels, *spatial) if channels_first else (batch, *spatial, channels)


def conv_length(size, kernel: int, stride: int, padding: str, dilation: int = 1):
    """Output length of a convolution or pooling window along one axis (Keras' formula)."""
    if size is None:
        return None
    if padding in ("same", "causal"):
        return (size + stride - 1) // stride
    effective = (kernel - 1) * dilation + 1
    if size < effective:
        return size - effective + 1  # negative or zero: the caller reports it
    return (size - effective) // stride + 1


def _spatial_out(call: LayerCall, spatial, kernel, strides, padding, dilation=None):
    dilation = dilation or (1,) * len(spatial)
    out = []
    for axis, (n, k, s, d) in enumerate(zip(spatial, kernel, strides, dilation)):
        length = conv_length(n, k, s, padding, d)
        if length is not None and length <= 0:
            raise ShapeError(
                f"{call.layer_type} window {k} does not fit in an axis of size {n} with padding '{padding}'",
                hint="use padding: same, a smaller kernel/pool size, or a larger input", argument="padding")
        out.append(length)
    return out


@rule("Conv1D", "Conv2D", "Conv3D")
def conv(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    spatial, channels, first = split_channels(call, x, rank)
    if channels is None:
        raise ShapeError(f"{call.layer_type} needs a known channel dimension, got {x}")
    kernel = as_tuple(call.arg("kernel_size"), rank, "kernel_size")
    strides = as_tuple(call.arg("strides"), rank, "strides")
    dilation = as_tuple(call.arg("dilation_rate"), rank, "dilation_rate")
    groups = call.arg("groups") or 1
    filters = call.arg("filters")
    if channels % groups or filters % groups:
        raise ShapeError(f"groups={groups} must divide both the input channels ({channels}) and filters ({filters})",
                         argument="groups")
    padding = call.arg("padding")
    out = _spatial_out(call, spatial, kernel, strides, padding, dilation)
    params = math.prod(kernel) * (channels // groups) * filters + (filters if call.arg("use_bias") else 0)
    return RuleResult(TensorInfo(join_channels(x.shape[0], out, filters, first), call.dtype()), params)


@rule("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
def pooling(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    spatial, channels, first = split_channels(call, x, rank)
    pool = as_tuple(call.arg("pool_size"), rank, "pool_size")
    strides = call.arg("strides")
    strides = pool if strides is None else as_tuple(strides, rank, "strides")
    out = _spatial_out(call, spatial, pool, strides, call.arg("padding"))
    return RuleResult(TensorInfo(join_channels(x.shape[0], out, channels, first), x.dtype))


@rule("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
      "GlobalAveragePooling2D", "GlobalAveragePooling3D")
def global_pooling(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    spatial, channels, first = split_channels(call, x, rank)
    if call.arg("keepdims"):
        return RuleResult(TensorInfo(join_channels(x.shape[0], [1] * rank, channels, first), x.dtype))
    return RuleResult(TensorInfo((x.shape[0], channels), x.dtype))
