"""Rules for convolution and pooling layers.

Output sizes follow Keras' own formulas (``keras/src/ops/operation_utils.py`` and
``backend/common/backend_utils.py``): for padding ``valid`` an axis of size ``n``
gives ``floor((n - dilation*(kernel-1) - 1) / stride) + 1``; for ``same`` (and
``causal``) it gives ``ceil(n / stride)``.
"""

from __future__ import annotations

import math

from graphspec.infer.rules import rule
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo


def spatial_rank(layer_type: str) -> int:
    """1, 2 or 3, from the class name's ``1D``/``2D``/``3D`` suffix."""
    for rank in (1, 2, 3):
        if f"{rank}D" in layer_type:
            return rank
    raise ValueError(layer_type)


def split_channels(call: LayerCall, x: TensorInfo, rank: int, *, need_channels: bool = False):
    """(spatial dims, channels, channels_first?) of a rank-``rank`` feature map (batch and channels added)."""
    call.require_rank(x, rank + 2)
    first = call.data_format() == "channels_first"
    spatial, channels = (list(x.shape[2:]), x.shape[1]) if first else (list(x.shape[1:-1]), x.shape[-1])
    if need_channels and channels is None:
        axis = 1 if first else -1
        raise ShapeError(f"{call.layer_type} needs a known number of channels (axis {axis}), got shape {x}",
                         hint="give the channel axis a size in the input's shape"
                         + ("" if first else ", or set data_format if the channels come first"))
    return spatial, channels, first


def join_channels(batch, spatial, channels, channels_first: bool) -> tuple:
    return (batch, channels, *spatial) if channels_first else (batch, *spatial, channels)


def conv_length(size: int | None, kernel: int, stride: int, padding: str, dilation: int = 1) -> int | None:
    """Output length of a convolution or pooling window along one axis (Keras' formula)."""
    if size is None:
        return None
    if padding in ("same", "causal"):
        return (size - 1) // stride + 1
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def transpose_length(size: int | None, kernel: int, stride: int, padding: str, output_padding: int | None,
                     dilation: int = 1) -> int | None:
    """Output length of a transposed convolution along one axis (Keras' formula)."""
    if size is None:
        return None
    kernel = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(kernel, stride) - kernel if output_padding is None else output_padding
        return (size - 1) * stride + kernel + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + kernel % 2 + output_padding


def padding_arg(call: LayerCall, *, causal: bool = False, lower: bool = True) -> str:
    padding = call.arg("padding", "valid")
    if isinstance(padding, str) and lower:
        padding = padding.lower()
    allowed = ("valid", "same", "causal") if causal else ("valid", "same")
    if padding not in allowed:
        extra = " ('causal' only for 1D convolutions)" if padding == "causal" else ""
        raise ArgumentError(f"{call.layer_type}: padding must be one of {', '.join(map(repr, allowed))}{extra}; "
                         f"got {padding!r}", argument="padding")
    return padding


def spatial_out(call: LayerCall, x: TensorInfo, spatial, kernel, strides, padding: str, dilation=None,
                *, window: str = "kernel_size") -> list[int | None]:
    """Output spatial sizes; a window that does not fit in the input is an error."""
    dilation = dilation or (1,) * len(spatial)
    out = []
    for n, k, s, d in zip(spatial, kernel, strides, dilation):
        length = conv_length(n, k, s, padding, d)
        if length is not None and length <= 0:
            effective = d * (k - 1) + 1
            span = f"{window} {list(kernel)}" + (f" with dilation_rate {list(dilation)}" if d > 1 else "")
            raise ShapeError(
                f"{call.layer_type} {span} does not fit in input {x} with padding 'valid': "
                f"an axis of size {n} is smaller than the window ({effective})",
                hint="use padding: same, a smaller window, or a larger input (remove a pooling step above)",
                argument=window, code="window-too-large")
        out.append(length)
    return out


def _check_strides_dilation(call: LayerCall, strides, dilation) -> None:
    if max(strides) > 1 and max(dilation) > 1:
        raise ArgumentError(f"{call.layer_type}: strides > 1 cannot be combined with dilation_rate > 1 "
                         f"(strides={list(strides)}, dilation_rate={list(dilation)})", argument="dilation_rate",
                         hint="use strides: 1 with a dilation, or dilation_rate: 1 with strides")


def window(call: LayerCall, rank: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``kernel_size``, ``strides`` and ``dilation_rate`` of a convolution, validated."""
    return call.ints("kernel_size", rank), call.ints("strides", rank), call.ints("dilation_rate", rank)


def window_args(call: LayerCall, rank: int) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``filters`` and the :func:`window` of a convolution, validated."""
    return (call.positive("filters"), *window(call, rank))


def _bias(call: LayerCall, size: int) -> int:
    return size if call.arg("use_bias", True) else 0


@rule("Conv1D", "Conv2D", "Conv3D")
def conv(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    filters, kernel, strides, dilation = window_args(call, rank)
    groups = call.positive("groups") if call.args.get("groups") is not None else 1
    padding = padding_arg(call, causal=rank == 1)
    if filters % groups:
        raise ArgumentError(f"{call.layer_type}: filters ({filters}) must be divisible by groups ({groups})",
                         argument="groups")
    _check_strides_dilation(call, strides, dilation)
    spatial, channels, first = split_channels(call, x, rank, need_channels=True)
    if channels % groups:
        raise ShapeError(f"{call.layer_type}: the input's {channels} channels are not divisible by groups={groups} "
                         f"(input {x})", argument="groups",
                         hint="groups must divide both the input channels and filters")
    out = spatial_out(call, x, spatial, kernel, strides, padding, dilation)
    params = math.prod(kernel) * (channels // groups) * filters + _bias(call, filters)
    return RuleResult(TensorInfo(join_channels(x.shape[0], out, filters, first), call.dtype()), params)


@rule("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def conv_transpose(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    filters, kernel, strides, dilation = window_args(call, rank)
    padding = padding_arg(call)
    output_padding = call.args.get("output_padding")
    if output_padding is not None:
        output_padding = call.ints("output_padding", rank, allow_zero=True)
        for op, s in zip(output_padding, strides):
            if op >= s:
                raise ArgumentError(f"{call.layer_type}: every output_padding must be smaller than its stride; "
                                 f"got output_padding={list(output_padding)}, strides={list(strides)}",
                                 argument="output_padding")
    _check_strides_dilation(call, strides, dilation)
    spatial, channels, first = split_channels(call, x, rank, need_channels=True)
    ops = output_padding or (None,) * rank
    out = [transpose_length(n, k, s, padding, op, d) for n, k, s, op, d in zip(spatial, kernel, strides, ops, dilation)]
    params = math.prod(kernel) * channels * filters + _bias(call, filters)
    return RuleResult(TensorInfo(join_channels(x.shape[0], out, filters, first), call.dtype()), params)


@rule("DepthwiseConv1D", "DepthwiseConv2D")
def depthwise_conv(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    multiplier = call.positive("depth_multiplier")
    kernel, strides, dilation = window(call, rank)
    padding = padding_arg(call)
    spatial, channels, first = split_channels(call, x, rank, need_channels=True)
    out = spatial_out(call, x, spatial, kernel, strides, padding, dilation)
    params = math.prod(kernel) * channels * multiplier + _bias(call, channels * multiplier)
    return RuleResult(TensorInfo(join_channels(x.shape[0], out, channels * multiplier, first), call.dtype()), params)


@rule("SeparableConv1D", "SeparableConv2D")
def separable_conv(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    filters = call.positive("filters")
    multiplier = call.positive("depth_multiplier")
    kernel, strides, dilation = window(call, rank)
    padding = padding_arg(call)
    spatial, channels, first = split_channels(call, x, rank, need_channels=True)
    out = spatial_out(call, x, spatial, kernel, strides, padding, dilation)
    params = (math.prod(kernel) * channels * multiplier + channels * multiplier * filters
              + _bias(call, filters))
    return RuleResult(TensorInfo(join_channels(x.shape[0], out, filters, first), call.dtype()), params)


@rule("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D")
def pooling(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    pool = call.ints("pool_size", rank)
    strides = pool if call.args.get("strides") is None else call.ints("strides", rank)
    padding = padding_arg(call, lower=False)
    spatial, channels, first = split_channels(call, x, rank)
    out = spatial_out(call, x, spatial, pool, strides, padding, window="pool_size")
    return RuleResult(TensorInfo(join_channels(x.shape[0], out, channels, first), call.dtype()))


@rule("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAveragePooling1D",
      "GlobalAveragePooling2D", "GlobalAveragePooling3D")
def global_pooling(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    spatial, channels, first = split_channels(call, x, rank)
    if call.arg("keepdims"):
        return RuleResult(TensorInfo(join_channels(x.shape[0], [1] * rank, channels, first), call.dtype()))
    return RuleResult(TensorInfo((x.shape[0], channels), call.dtype()))



@rule("AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
      "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D")
def adaptive_pooling(call: LayerCall) -> RuleResult:
    rank = spatial_rank(call.layer_type)
    x = call.input
    size = call.ints("output_size", rank)
    spatial, channels, first = split_channels(call, x, rank)
    if call.layer_type.startswith("AdaptiveMax"):
        check_adaptive_max_windows(call, x, spatial, size)
    return RuleResult(TensorInfo(join_channels(x.shape[0], list(size), channels, first), call.dtype()))


ADAPTIVE_MAX = ("AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D")
"""Layers whose TensorFlow kernel kills the process (SIGFPE) for some input sizes: check must know them."""


def check_adaptive_max_windows(call: LayerCall, x: TensorInfo, spatial, size) -> None:
    """Keras' TensorFlow implementation pools with windows of ceil(n / out) and one more; a window
    larger than the axis (an axis of 1, or output_size 1) divides by zero in TensorFlow's kernel
    and kills Python with SIGFPE. It also needs every spatial size known when it runs."""
    for n, out in zip(spatial, size):
        if n is None:
            raise ShapeError(f"{call.layer_type} needs known spatial sizes (Keras' implementation requires them), "
                             f"got input {x}", hint="give the input's spatial axes sizes, or use GlobalMaxPooling "
                             "or MaxPooling, which take any size")
        if math.ceil(n / out) + 1 > n:
            hint = ("for output_size 1 use GlobalMaxPooling with keepdims: true" if out == 1
                    else "pool a larger input, or use MaxPooling")
            raise ShapeError(f"{call.layer_type}: an axis of size {n} pooled to {out} needs a window of "
                             f"{math.ceil(n / out) + 1}, larger than the axis, which crashes TensorFlow's kernel "
                             f"(input {x})", argument="output_size", hint=hint, code="window-too-large")
