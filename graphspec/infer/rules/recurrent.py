"""Rules for recurrent layers (SimpleRNN, GRU, LSTM) and their wrappers."""

from __future__ import annotations

from graphspec.infer.rules import rule
from graphspec.infer.tensor import LayerCall, RuleResult, ShapeError, TensorInfo

_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def rnn_params(layer_type: str, args: dict, features: int) -> int:
    units = args["units"]
    gates = _GATES[layer_type]
    params = gates * units * (features + units)
    if args.get("use_bias", True):
        bias = gates * units
        if layer_type == "GRU" and args.get("reset_after", True):
            bias *= 2
        params += bias
    return params


def rnn_outputs(layer_type: str, args: dict, x: TensorInfo, dtype: str) -> list[TensorInfo] | TensorInfo:
    units = args["units"]
    batch, steps = x.shape[0], x.shape[1]
    main = TensorInfo((batch, steps, units) if args.get("return_sequences") else (batch, units), dtype)
    if not args.get("return_state"):
        return main
    states = 2 if layer_type == "LSTM" else 1
    return [main] + [TensorInfo((batch, units), dtype) for _ in range(states)]


@rule("SimpleRNN", "GRU", "LSTM")
def recurrent(call: LayerCall) -> RuleResult:
    x = call.input
    call.require_rank(x, 3)
    if x.shape[-1] is None:
        raise ShapeError(f"{call.layer_type} needs a known feature dimension, got {x}")
    return RuleResult(rnn_outputs(call.layer_type, call.args, x, call.dtype()),
                      rnn_params(call.layer_type, call.args, x.shape[-1]))
