"""What inference knows of a tensor, and the vocabulary shape rules are written in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

Shape = tuple[Union[int, None], ...]

DATA_FORMATS = ("channels_last", "channels_first")


def is_float(dtype: str) -> bool:
    """Whether a dtype is a floating-point type (those Keras autocasts to a layer's compute dtype)."""
    return dtype.startswith(("float", "bfloat"))


def show(shape: Sequence[int | None]) -> str:
    """A shape as Keras prints it: ``(None, 28, 28, 3)``."""
    inner = ", ".join("None" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def product(dims: Sequence[int | None]) -> int | None:
    """The product of the dimensions, or None if any is unknown."""
    if any(d is None for d in dims):
        return None
    return math.prod(dims)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TensorInfo:
    """Static shape (batch dimension first, ``None`` where unknown) and dtype of one tensor."""

    shape: Shape
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return show(self.shape)


Inputs = Union[TensorInfo, list[TensorInfo], dict[str, Union[TensorInfo, list[TensorInfo]]]]


def outputs_text(outputs: "TensorInfo | list[TensorInfo] | None") -> str:
    """A node's inferred output(s) for people: ``(None, 32)``, several comma-separated, or ``?``."""
    if outputs is None:
        return "? (Keras infers it at build)"
    if isinstance(outputs, list):
        return ", ".join(str(t) for t in outputs)
    return str(outputs)


class ShapeError(Exception):
    """Raised by a shape rule: what does not fit, and optionally the argument to blame.

    ``argument`` names the constructor argument at fault (``"padding"``), or is a path
    below the node (``("layer", "units")`` for an argument of a wrapped layer).
    """

    def __init__(self, message: str, *, hint: str | None = None, argument: str | tuple | None = None,
                 code: str = "shape-mismatch"):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.argument = argument
        self.code = code
        self.path: tuple | None = None
        """Set by the graph walker where the problem is a reference (a data path in the spec)."""


class ArgumentError(ShapeError):
    """A constructor argument is invalid in itself (not for want of a fitting input)."""

    def __init__(self, message: str, *, hint: str | None = None, argument: str | tuple | None = None,
                 code: str = "bad-argument"):
        super().__init__(message, hint=hint, argument=argument, code=code)


def blame(error: ShapeError, prefix: tuple) -> ShapeError:
    """The error with its argument moved below ``prefix`` (for a wrapped layer's arguments)."""
    if error.argument is None:
        return error
    rest = error.argument if isinstance(error.argument, tuple) else (error.argument,)
    error.argument = tuple(prefix) + rest
    return error


@dataclass
class LayerCall:
    """One layer application as a shape rule sees it."""

    layer_type: str
    """Canonical Keras class name."""
    args: dict[str, Any]
    """Constructor arguments: the spec's, over Keras' defaults from the catalogue."""
    inputs: Inputs
    call: dict[str, Any] = field(default_factory=dict)

    @property
    def input(self) -> TensorInfo:
        """The single input tensor (a rule for a single-input layer uses this)."""
        if isinstance(self.inputs, TensorInfo):
            return self.inputs
        if isinstance(self.inputs, list) and len(self.inputs) == 1:
            # Keras hands a one-element list to call() as a list, which a single-input layer refuses.
            raise ShapeError(f"{self.layer_type} takes one tensor, not a list of one",
                             hint="write the reference without brackets, e.g. 'input: x'", code="wrong-input-count")
        if isinstance(self.inputs, dict):
            # By call argument: the main tensor is the call's first argument ('inputs', 'sequences', ...);
            # the others are masks or states.
            main = next(iter(self.inputs)) if len(self.inputs) == 1 else _first_call_argument(self.layer_type)
            if main in self.inputs:
                value = self.inputs[main]
                if isinstance(value, list):
                    raise ShapeError(f"{self.layer_type} takes one tensor as '{main}', got a list of {len(value)}",
                                     hint=f"give '{main}' a single reference", code="wrong-input-count")
                return value
        raise ShapeError(f"{self.layer_type} takes one input tensor, got {len(self.inputs)}: "
                         + ", ".join(str(t) for t in (self.inputs.values() if isinstance(self.inputs, dict)
                                                      else self.inputs)),
                         hint="give 'input:' a single reference", code="wrong-input-count")

    @property
    def input_list(self) -> list[TensorInfo]:
        """The inputs of a layer that takes a list (merge layers)."""
        if isinstance(self.inputs, list):
            return self.inputs
        if isinstance(self.inputs, dict):
            if len(self.inputs) == 1 and isinstance(next(iter(self.inputs.values())), list):
                return next(iter(self.inputs.values()))  # {inputs: [a, b]}
            return list(self.inputs.values())
        raise ShapeError(f"{self.layer_type} takes a list of inputs, got a single tensor {self.inputs}",
                         hint="give 'input:' a list, e.g. [a, b]", code="wrong-input-count")

    def arg(self, name: str, default: Any = None) -> Any:
        value = self.args.get(name)
        return default if value is None else value

    def dtype(self) -> str:
        """The layer's compute dtype: its ``dtype`` argument, else float32 (Keras' default policy)."""
        dtype = self.args.get("dtype")
        if isinstance(dtype, str):
            return {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(dtype, dtype)
        if isinstance(dtype, dict):  # a dtype policy given as {name: mixed_float16}
            name = dtype.get("name") or dtype.get("type")
            if isinstance(name, str):
                return {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(name, name)
        return "float32"

    def passthrough_dtype(self, x: TensorInfo) -> str:
        """The dtype of ``x`` as the layer's ``call`` sees it: floats are cast to the compute dtype."""
        if is_float(x.dtype) and self.args.get("autocast", True) is not False:
            return self.dtype()
        return x.dtype

    def data_format(self) -> str:
        value = self.args.get("data_format") or "channels_last"
        if value not in DATA_FORMATS:
            raise ArgumentError(f"{self.layer_type}: data_format must be 'channels_last' or 'channels_first', "
                             f"got {value!r}", argument="data_format")
        return value

    def positive(self, name: str, *, allow_zero: bool = False) -> int:
        """An integer argument that must be positive (e.g. ``units``, ``filters``)."""
        value = self.args.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
            what = "a non-negative" if allow_zero else "a positive"
            raise ArgumentError(f"{self.layer_type}: '{name}' must be {what} integer, got {value!r}", argument=name)
        return value

    def ints(self, name: str, count: int, *, allow_zero: bool = False, value: Any = None) -> tuple[int, ...]:
        """An argument given as one integer or ``count`` integers, as a ``count``-tuple (Keras' standardize_tuple)."""
        raw = self.args.get(name) if value is None else value
        if isinstance(raw, int) and not isinstance(raw, bool):
            values: tuple = (raw,) * count
        elif isinstance(raw, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
            values = tuple(raw)
            if len(values) != count:
                raise ArgumentError(f"{self.layer_type}: '{name}' needs {count} values (one per spatial axis), "
                                 f"got {len(values)}: {list(values)}", argument=name,
                                 hint=f"give one integer for all axes or a list of {count}")
        else:
            raise ArgumentError(f"{self.layer_type}: '{name}' must be an integer or a list of {count} integers, "
                             f"got {raw!r}", argument=name)
        smallest = 0 if allow_zero else 1
        if any(v < smallest for v in values):
            raise ArgumentError(f"{self.layer_type}: '{name}' values must be "
                             f"{'non-negative' if allow_zero else 'positive'}, got {list(values)}", argument=name)
        return values

    def require_rank(self, tensor: TensorInfo, rank: int | None = None, *, min_rank: int | None = None,
                     what: str = "input") -> None:
        if rank is not None and tensor.rank != rank:
            raise ShapeError(
                f"{self.layer_type} expects a rank-{rank} {what} "
                f"{_layout(self.layer_type, rank, self.args.get('data_format') == 'channels_first')}, "
                f"got shape {tensor} (rank {tensor.rank})",
                hint=_rank_hint(self.layer_type, rank, tensor), code="rank-mismatch")
        if min_rank is not None and tensor.rank < min_rank:
            raise ShapeError(
                f"{self.layer_type} expects {'an' if what[0] in 'aeiou' else 'a'} {what} of rank {min_rank} or more, "
                f"got shape {tensor} "
                f"(rank {tensor.rank})",
                hint=_rank_hint(self.layer_type, min_rank, tensor), code="rank-mismatch")


def _first_call_argument(layer_type: str) -> str | None:
    from graphspec.catalogue import catalogue

    entry = catalogue().layer(layer_type)
    names = entry.get("call_args") if entry else None
    return names[0] if names else None


def _layout(layer_type: str, rank: int, channels_first: bool = False) -> str:
    """How the axes of a rank-N input are laid out, for messages."""
    if rank == 2:
        return "(batch, features)"
    if rank == 3 and ("1D" in layer_type or layer_type in ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")):
        return "(batch, channels, steps)" if channels_first and "1D" in layer_type else "(batch, steps, features)"
    spatial = {4: ("2D", "height, width"), 5: ("3D", "depth, height, width")}.get(rank)
    if spatial and spatial[0] in layer_type:
        return f"(batch, channels, {spatial[1]})" if channels_first else f"(batch, {spatial[1]}, channels)"
    return "(batch first)"


def _rank_hint(layer_type: str, rank: int, tensor: TensorInfo) -> str | None:
    if tensor.rank < rank:
        return (f"{layer_type} needs {rank - 1} dimensions per sample, the input has {tensor.rank - 1}; "
                f"add a Reshape node before it (target_shape with {rank - 1} entries)")
    if tensor.rank > rank:
        return "flatten or pool the extra dimensions first (Flatten, GlobalAveragePooling, Reshape)"
    return None


@dataclass
class RuleResult:
    """What a rule infers: output tensor(s) and the layer's parameter counts."""

    outputs: Union[TensorInfo, list[TensorInfo]]
    params: int = 0
    non_trainable_params: int = 0
