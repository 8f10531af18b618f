"""What inference knows of a tensor, and the vocabulary shape rules are written in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

Shape = tuple[Union[int, None], ...]


@dataclass(frozen=True)
class TensorInfo:
    """Static shape (batch dimension first, ``None`` where unknown) and dtype of one tensor."""

    shape: Shape
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return "(" + ", ".join("None" if d is None else str(d) for d in self.shape) + ")"


Inputs = Union[TensorInfo, list[TensorInfo], dict[str, TensorInfo]]


class ShapeError(Exception):
    """Raised by a shape rule: what does not fit, and optionally the argument to blame."""

    def __init__(self, message: str, *, hint: str | None = None, argument: str | None = None,
                 code: str = "shape-mismatch"):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.argument = argument
        self.code = code


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
            return self.inputs[0]
        if isinstance(self.inputs, dict):
            first = next(iter(self.inputs.values()))
            return first
        raise ShapeError(f"{self.layer_type} takes one input, got {len(self.inputs)}",
                         hint="give 'input:' a single reference")

    @property
    def input_list(self) -> list[TensorInfo]:
        """The inputs of a layer that takes a list (merge layers)."""
        if isinstance(self.inputs, list):
            return self.inputs
        if isinstance(self.inputs, dict):
            return list(self.inputs.values())
        raise ShapeError(f"{self.layer_type} takes a list of inputs, got a single tensor {self.inputs}",
                         hint="give 'input:' a list, e.g. [a, b]")

    def arg(self, name: str) -> Any:
        return self.args.get(name)

    def dtype(self) -> str:
        """The layer's output dtype: its ``dtype`` argument, else float32 (Keras' default policy)."""
        dtype = self.args.get("dtype")
        if isinstance(dtype, str):
            return {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(dtype, dtype)
        return "float32"

    def require_rank(self, tensor: TensorInfo, rank: int | None = None, *, min_rank: int | None = None,
                     what: str = "input") -> None:
        if rank is not None and tensor.rank != rank:
            raise ShapeError(
                f"{self.layer_type} expects a rank-{rank} {what} (batch first), got shape {tensor}",
                hint=_rank_hint(self.layer_type, rank, tensor))
        if min_rank is not None and tensor.rank < min_rank:
            raise ShapeError(
                f"{self.layer_type} expects an {what} of rank {min_rank} or more, got shape {tensor}")


def _rank_hint(layer_type: str, rank: int, tensor: TensorInfo) -> str | None:
    if tensor.rank < rank:
        return (f"a {layer_type} needs {rank - 1} dimensions per sample; add a Reshape node before it "
                f"(e.g. target_shape with {rank - 1} entries)")
    if tensor.rank > rank:
        return "flatten or pool the extra dimensions first"
    return None


@dataclass
class RuleResult:
    """What a rule infers: output tensor(s) and the layer's parameter counts."""

    outputs: Union[TensorInfo, list[TensorInfo]]
    params: int = 0
    non_trainable_params: int = 0
