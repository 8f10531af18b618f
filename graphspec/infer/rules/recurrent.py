"""Rules for recurrent layers (SimpleRNN, GRU, LSTM, RNN over a cell) and the wrappers
Bidirectional and TimeDistributed, which apply the rule of the layer they wrap."""

from __future__ import annotations

from typing import Any

from graphspec.infer.rules import rule
from graphspec.infer.tensor import ArgumentError, LayerCall, RuleResult, ShapeError, TensorInfo, blame

_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4, "SimpleRNNCell": 1, "GRUCell": 3, "LSTMCell": 4}
RECURRENT = ("SimpleRNN", "GRU", "LSTM", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


def rnn_params(layer_type: str, args: dict, features: int) -> int:
    units = args["units"]
    gates = _GATES[layer_type]
    params = gates * units * (features + units)
    if args.get("use_bias", True):
        bias = gates * units
        if layer_type.startswith("GRU") and args.get("reset_after", True):
            bias *= 2  # separate input and recurrent biases
        params += bias
    return params


def _sequence(call: LayerCall, x: TensorInfo, args: dict) -> int:
    """Checks a recurrent layer's input; returns its feature size."""
    call.require_rank(x, 3)
    if x.shape[-1] is None:
        raise ShapeError(f"{call.layer_type} needs a known feature size (last axis), got shape {x}",
                         hint="give the last axis of the input a size")
    if args.get("stateful") and x.shape[0] is None:
        raise ShapeError(f"a stateful {call.layer_type} needs a fixed batch size, the input {x} has none",
                         argument="stateful", hint="remove stateful: true (a spec's inputs have no fixed batch size)")
    return x.shape[-1]


def _outputs(x: TensorInfo, units: int, states: int, args: dict, dtype: str):
    batch, steps = x.shape[0], x.shape[1]
    main = TensorInfo((batch, steps, units) if args.get("return_sequences") else (batch, units), dtype)
    if not args.get("return_state"):
        return main
    return [main] + [TensorInfo((batch, units), dtype) for _ in range(states)]


def _state_example(count: int, what: str) -> str:
    if what == "h and c":
        return '["enc[1]", "enc[2]"] (an LSTM\'s return_state outputs h and c)'
    return "[" + ", ".join(f"state_{i + 1}" for i in range(count)) + "]"


def initial_states(call: LayerCall, count: int, what: str) -> list[TensorInfo]:
    """The ``initial_state`` call argument's tensors, which must be ``count`` of them.

    Keras' recurrent layers index the list of states in ``call()``: a single tensor where an LSTM
    needs two (h and c) builds, then fails with an IndexError when the model first runs. A list
    (``initial_state: [h, c]``) is counted the same way.
    """
    given = call.inputs.get("initial_state") if isinstance(call.inputs, dict) else None
    if given is None:
        return []
    tensors = given if isinstance(given, list) else [given]
    if len(tensors) != count:
        raise ShapeError(
            f"{call.layer_type} starts from {count} state tensor{'s' if count > 1 else ''} ({what}); "
            f"initial_state gives {len(tensors)}", argument=("input", "initial_state"), code="wrong-input-count",
            hint=(f"give initial_state a list of {count} references, e.g. {_state_example(count, what)}"
                  if count > 1 else "give initial_state one reference")
            + ", or remove initial_state (the states start at zero)")
    return tensors


@rule("SimpleRNN", "GRU", "LSTM")
def recurrent(call: LayerCall) -> RuleResult:
    x = call.input
    units = call.positive("units")
    features = _sequence(call, x, call.args)
    states = 2 if call.layer_type == "LSTM" else 1
    for initial in initial_states(call, states, "h and c" if states == 2 else "h"):
        if initial.rank != 2 or initial.shape[1] not in (None, units):
            raise ShapeError(f"{call.layer_type} with {units} units starts from a state of shape (batch, {units}), "
                             f"got initial_state {initial}", argument=("input", "initial_state"),
                             hint=f"give initial_state a tensor of {units} features (e.g. a Dense with units: {units})")
    return RuleResult(_outputs(x, units, states, call.args, call.dtype()),
                      rnn_params(call.layer_type, call.args, features))


@rule("RNN")
def rnn(call: LayerCall) -> RuleResult | None:
    from graphspec.infer import layer_args

    x = call.input
    cell = call.arg("cell")
    if not isinstance(cell, dict) or not isinstance(cell.get("type"), str):
        return None  # a list of cells (stacked): Keras knows the state layout
    cell_type = cell["type"]
    if cell_type not in _GATES:
        return None
    initial_states(call, 2 if cell_type == "LSTMCell" else 1, "h and c" if cell_type == "LSTMCell" else "h")
    cell_args = layer_args(cell_type, {k: v for k, v in cell.items() if k != "type"})
    probe = LayerCall(cell_type, cell_args, x)
    try:
        units = probe.positive("units")
    except ShapeError as error:
        raise blame(error, ("cell",))
    features = _sequence(call, x, call.args)
    states = 2 if cell_type == "LSTMCell" else 1
    return RuleResult(_outputs(x, units, states, call.args, call.dtype()), rnn_params(cell_type, cell_args, features))


def _wrapped(call: LayerCall, key: str) -> tuple[str, dict[str, Any]]:
    """The nested layer configuration ``{type: LSTM, units: 32, ...}`` under ``key``."""
    value = call.args.get(key)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ArgumentError(f"{call.layer_type}: '{key}' must be a layer configuration such as "
                         "{type: LSTM, units: 32}", argument=key)
    return value["type"], {k: v for k, v in value.items() if k != "type"}


def _apply(call: LayerCall, key: str, layer_type: str, args: dict, inputs) -> RuleResult | None:
    from graphspec.infer import infer_layer

    try:
        return infer_layer(layer_type, args, inputs)
    except ShapeError as error:
        if error.argument is None:
            error.message = f"{call.layer_type}({layer_type}): {error.message}"
        raise blame(error, (key,))


@rule("Bidirectional")
def bidirectional(call: LayerCall) -> RuleResult | None:
    from graphspec.infer import layer_args

    x = call.input
    merge_mode = call.args.get("merge_mode", "concat")
    if merge_mode not in ("concat", "sum", "mul", "ave", None):
        raise ArgumentError(f"Bidirectional: merge_mode must be concat, sum, mul, ave or null, got {merge_mode!r}",
                         argument="merge_mode")
    inner_type, inner = _wrapped(call, "layer")
    from graphspec.catalogue import catalogue

    canonical = catalogue().canonical(inner_type) or inner_type
    if canonical not in RECURRENT:
        raise ArgumentError(f"Bidirectional wraps a recurrent layer (LSTM, GRU, SimpleRNN, RNN), got {inner_type}",
                         argument=("layer", "type"))
    forward = _apply(call, "layer", inner_type, inner, x)
    if isinstance(call.inputs, dict) and "initial_state" in call.inputs:
        per_direction = 2 if canonical in ("LSTM", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D") or (
            canonical == "RNN" and isinstance(inner.get("cell"), dict) and inner["cell"].get("type") == "LSTMCell") else 1
        initial_states(call, 2 * per_direction, "the forward layer's, then the backward layer's")
    inner_full = layer_args(canonical, inner)
    backward_params = forward.params if forward else None
    backward_non_trainable = forward.non_trainable_params if forward else None
    if call.args.get("backward_layer") is not None:
        back_type, back = _wrapped(call, "backward_layer")
        back_full = layer_args(catalogue().canonical(back_type) or back_type, back)
        if bool(back_full.get("go_backwards")) == bool(inner_full.get("go_backwards")):
            raise ArgumentError("Bidirectional: backward_layer must run the other way: set go_backwards: true on it "
                             "(and not on layer)", argument=("backward_layer", "go_backwards"))
        for name in ("stateful", "return_sequences", "return_state"):
            if bool(back_full.get(name)) != bool(inner_full.get(name)):
                raise ArgumentError(f"Bidirectional: layer and backward_layer must agree on {name} "
                                 f"({inner_full.get(name)} vs {back_full.get(name)})",
                                 argument=("backward_layer", name))
        backward = _apply(call, "backward_layer", back_type, back, x)
        backward_params = backward.params if backward else None
        backward_non_trainable = backward.non_trainable_params if backward else None
    if forward is None or backward_params is None:
        return None
    outputs = forward.outputs
    main, states = (outputs[0], outputs[1:]) if isinstance(outputs, list) else (outputs, [])
    dtype = call.dtype()
    main = TensorInfo(main.shape, dtype)
    states = [TensorInfo(s.shape, dtype) for s in states]
    if merge_mode == "concat":
        last = main.shape[-1]
        merged: list[TensorInfo] = [TensorInfo(main.shape[:-1] + (None if last is None else 2 * last,), dtype)]
    elif merge_mode is None:
        merged = [main, main]
    else:
        merged = [main]
    result = merged + states + states
    return RuleResult(result[0] if len(result) == 1 else result, forward.params + backward_params,
                      forward.non_trainable_params + (backward_non_trainable or 0))


@rule("TimeDistributed")
def time_distributed(call: LayerCall) -> RuleResult | None:
    x = call.input
    inner_type, inner = _wrapped(call, "layer")
    call.require_rank(x, min_rank=3)
    step = TensorInfo((x.shape[0], *x.shape[2:]), x.dtype)
    result = _apply(call, "layer", inner_type, inner, step)
    if result is None:
        return None
    if not isinstance(result.outputs, TensorInfo):
        raise ShapeError(f"TimeDistributed wraps a layer with one output; {inner_type} here returns "
                         f"{len(result.outputs)}", argument=("layer", "type"))
    out = result.outputs.shape
    return RuleResult(TensorInfo((out[0], x.shape[1], *out[1:]), call.dtype()), result.params,
                      result.non_trainable_params)


@rule("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
def conv_lstm(call: LayerCall) -> RuleResult:
    from graphspec.infer.rules.convolution import join_channels, padding_arg, spatial_out, spatial_rank, window_args

    rank = spatial_rank(call.layer_type)
    x = call.input
    filters, kernel, strides, dilation = window_args(call, rank)
    padding = padding_arg(call)
    if max(strides) > 1 and max(dilation) > 1:
        raise ArgumentError(f"{call.layer_type}: strides > 1 cannot be combined with dilation_rate > 1",
                            argument="dilation_rate")
    call.require_rank(x, rank + 3, what="sequence of feature maps (batch, time, ..., channels)")
    initial_states(call, 2, "h and c")
    first = call.data_format() == "channels_first"
    spatial, channels = (list(x.shape[3:]), x.shape[2]) if first else (list(x.shape[2:-1]), x.shape[-1])
    if None in spatial or channels is None:
        raise ShapeError(f"{call.layer_type} needs known spatial sizes and channels, got {x}",
                         hint="give every axis but the batch and time axes a size")
    if call.args.get("stateful") and x.shape[0] is None:
        raise ShapeError(f"a stateful {call.layer_type} needs a fixed batch size, the input {x} has none",
                         argument="stateful")
    step = TensorInfo((x.shape[0], *x.shape[2:]), x.dtype)
    out = spatial_out(call, step, spatial, kernel, strides, padding, dilation)
    state = join_channels(x.shape[0], out, filters, first)
    dtype = call.dtype()
    main = TensorInfo((state[0], x.shape[1], *state[1:]) if call.arg("return_sequences") else state, dtype)
    outputs = [main, TensorInfo(state, dtype), TensorInfo(state, dtype)] if call.arg("return_state") else main
    size = 1
    for k in kernel:
        size *= k
    params = size * channels * 4 * filters + size * filters * 4 * filters
    if call.arg("use_bias", True):
        params += 4 * filters
    return RuleResult(outputs, params)
