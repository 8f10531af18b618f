"""Shape rules of ``op:`` nodes (calls of allow-listed ``keras.ops`` functions), one per op family.

The catalogue (``keras.json``, section ``ops``) says which family an op belongs to, which of its
arguments are tensor operands, and the output dtype Keras gives for each combination of operand
dtypes (read from Keras by the generator). A rule here computes the output shape; the batch axis
stays the first axis of every result (an op that would reduce, move or reshape it is refused, as
the rest of the model and ``fit`` rely on it). ``tests/infer/test_rules_vs_keras.py`` compares
every family with Keras' own ``compute_output_spec``.

:func:`bind_op` is shared with ``emit``: it turns the node's operands (references in ``input:``,
scalar constants inline) and arguments into the positional and keyword arguments of the call.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from graphspec.catalogue import catalogue
from graphspec.infer.tensor import ArgumentError, RuleResult, Shape, ShapeError, TensorInfo

OpRule = Callable[[str, list, dict], Shape]
FAMILY_RULES: dict[str, OpRule] = {}


def family(*names: str) -> Callable[[OpRule], OpRule]:
    def register(function: OpRule) -> OpRule:
        for name in names:
            FAMILY_RULES[name] = function
        return function

    return register


def bind_op(name: str, inputs: Any, args: dict[str, Any]) -> tuple[list, dict]:
    """``(positional, keyword)`` arguments of ``keras.ops.<name>``: tensor operands from ``inputs`` (one
    value, a list in operand order, or operand name -> value), scalar operands and other arguments from
    ``args``. Lists in arguments become tuples (Keras' shapes and axes)."""
    entry = catalogue().op(name)
    if entry is None:
        raise ArgumentError(f"unknown op '{name}'", argument="op")
    operands = entry["operands"]
    kwargs = {k: _plain(v) for k, v in args.items() if k not in operands}
    if entry.get("variadic"):
        tensors = list(inputs) if isinstance(inputs, list) else [inputs]
        first = [kwargs.pop(k) for k in list(entry["args"]) if k in kwargs]
        return first + tensors, kwargs
    queue = list(inputs) if isinstance(inputs, list) else [] if isinstance(inputs, dict) else [inputs]
    positional = []
    for operand in operands:
        if operand in args:
            positional.append(args[operand])
        elif isinstance(inputs, dict):
            if operand in inputs:
                positional.append(inputs[operand])
            else:
                break
        elif queue:
            positional.append(queue.pop(0))
        else:
            break
    if queue:
        raise ShapeError(f"op '{name}' takes {len(operands)} operand(s), got {len(positional) + len(queue)}",
                         code="wrong-operand-count")
    return positional, kwargs


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def _kind(value: Any) -> str:
    """An operand's dtype, or the kind of a scalar constant ('py_bool', 'py_int', 'py_float')."""
    if isinstance(value, TensorInfo):
        return value.dtype
    if isinstance(value, bool):
        return "py_bool"
    if isinstance(value, int):
        return "py_int"
    if isinstance(value, float):
        return "py_float"
    raise TypeError(f"not an operand: {value!r}")


def infer_op(name: str, args: dict[str, Any], inputs: Any) -> RuleResult:
    """Output tensor of one op call (ops hold no weights). Raises :class:`ShapeError`; a ``TypeError``
    or ``KeyError`` (an argument form or dtype the rule does not know) leaves the shape to Keras."""
    entry = catalogue().op(name)
    if entry is None:
        raise ArgumentError(f"unknown op '{name}'", argument="op")
    positional, kwargs = bind_op(name, inputs, args)
    tensors = positional[1:] if entry.get("variadic") else positional
    if not any(isinstance(t, TensorInfo) for t in tensors):
        raise ShapeError(f"op '{name}' needs at least one tensor operand (a reference in 'input:')",
                         code="wrong-operand-count")
    shape = FAMILY_RULES[entry["family"]](name, positional, kwargs)
    dtype = _dtype(name, entry, tensors, kwargs)
    return RuleResult(TensorInfo(tuple(shape), dtype), 0, 0)


def _dtype(name: str, entry: dict, tensors: list, kwargs: dict) -> str:
    kinds = [_kind(t) for t in tensors]
    if name == "cast" or (kwargs.get("dtype") is not None and name in ("zeros_like", "ones_like", "full_like")):
        return str(kwargs["dtype"])
    if entry["family"] == "where":
        kinds = kinds[1:]  # the table is for a bool condition (Keras casts other conditions to bool)
    table = entry["dtypes"]
    if entry["family"] == "einsum":  # the table holds pairs: fold the operands' dtypes pair by pair
        result = kinds[0]
        for kind in kinds[1:] or kinds[:1]:
            result = table[f"{result}|{kind}"]
            if result is None:
                break
        kinds = [result] if result is not None else kinds
        key = f"{kinds[0]}|{kinds[0]}" if result is not None else "|".join(kinds[:2])
        if result is not None and len(tensors) > 1:
            return result
    else:
        key = "|".join(kinds)
    if key not in table:
        raise KeyError(key)  # a dtype Keras was not probed with (strings, complex): Keras decides at build
    found = table[key]
    if found is None:
        raise ShapeError(f"op '{name}' does not run on operands of dtype {', '.join(kinds)}: Keras refuses them, "
                         "or builds the op and the model fails or returns another dtype when it runs",
                         code="dtype-mismatch", hint="cast first: {op: cast, dtype: float32}")
    if kwargs.get("dtype") is not None and name in ("cumsum", "cumprod", "prod"):
        raise KeyError("dtype")  # Keras' own rules for an explicit dtype: left to Keras
    return found


def _axis(name: str, value: Any, rank: int, argument: str = "axis", *, new: bool = False) -> int:
    """A non-negative axis of a rank-``rank`` tensor (``new``: a position for an inserted axis), never the
    batch axis."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(argument)
    size = rank + 1 if new else rank
    if not -size <= value < size:
        raise ArgumentError(f"op '{name}': {argument} {value} is out of range for a rank-{rank} tensor",
                            argument=argument, hint=f"axes go from 1 to {size - 1} (0 is the batch axis)")
    axis = value % size
    if axis == 0:
        raise ArgumentError(f"op '{name}': {argument} {value} is the batch axis", argument=argument,
                            hint="ops work on the axes of each sample: axis 1 is the first axis after the batch")
    return axis


def broadcast(name: str, shapes: list[Shape]) -> Shape:
    """Numpy broadcasting, as Keras' ``broadcast_shapes``; an unknown size against a known size > 1 is
    refused (it runs only if they happen to be equal)."""
    rank = max(len(s) for s in shapes)
    out: list = []
    for i in range(rank):
        sizes = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = {d for d in sizes if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(f"op '{name}': operands of shapes {', '.join(_show(s) for s in shapes)} do not "
                             f"broadcast (axis {i - rank}: sizes {', '.join(map(str, sorted(known)))})",
                             hint="the sizes of an axis must be equal, or 1 in all but one operand")
        if known and None in sizes and i != 0:
            raise ShapeError(f"op '{name}': axis {i - rank} has size {known.pop()} in one operand and a size "
                             f"known only when the model runs in another: {', '.join(_show(s) for s in shapes)}",
                             code="unknown-size-broadcast",
                             hint="they broadcast only if the sizes happen to be equal: give that axis a size")
        if known:
            out.append(known.pop())
        elif None in sizes:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _show(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _shapes(values: list) -> list[Shape]:
    return [v.shape if isinstance(v, TensorInfo) else () for v in values]


@family("unary")
def unary(name: str, positional: list, kwargs: dict) -> Shape:
    (x,) = positional
    if name in ("softmax", "log_softmax", "cumsum", "cumprod") and kwargs.get("axis") is not None:
        _axis(name, kwargs["axis"], x.rank)
    if name in ("cumsum", "cumprod") and kwargs.get("axis") is None:
        raise ArgumentError(f"op '{name}' without an axis flattens the batch axis with the others",
                            argument="op", hint="give the axis, e.g. axis: 1")
    if name == "clip":
        for key in ("x_min", "x_max"):
            if isinstance(kwargs.get(key), bool) or not isinstance(kwargs.get(key), (int, float)):
                raise TypeError(key)
    integral = not x.dtype.startswith(("float", "bfloat", "complex"))
    fills = [kwargs.get(k) for k in ("x_min", "x_max", "fill_value") if k in kwargs]
    if name in ("clip", "full_like") and kwargs.get("dtype") is None and integral \
            and any(isinstance(v, float) for v in fills):
        raise ShapeError(f"op '{name}' of the {x.dtype} tensor {x} with a fractional value "
                         f"({', '.join(str(v) for v in fills if isinstance(v, float))}): Keras builds it, and the "
                         "model fails when it runs", code="dtype-mismatch",
                         hint="cast the tensor to a float dtype first, or give whole numbers")
    return x.shape


@family("binary", "where")
def elementwise(name: str, positional: list, kwargs: dict) -> Shape:
    if len(positional) != (3 if name == "where" else 2):
        raise ShapeError(f"op '{name}' needs {3 if name == 'where' else 2} operands", code="wrong-operand-count")
    tensors = [t for t in positional if isinstance(t, TensorInfo)]
    if len({t.rank for t in tensors}) > 1:
        low, high = min(tensors, key=lambda t: t.rank), max(tensors, key=lambda t: t.rank)
        raise ShapeError(f"op '{name}': operands {low} and {high} have different ranks, so broadcasting would align "
                         f"the batch axis of {low} with axis {high.rank - low.rank} of {high}",
                         hint="give them the same rank first, e.g. {op: expand_dims, axis: 1}; a scalar constant "
                              "broadcasts to any shape")
    return broadcast(name, _shapes(positional))


@family("reduce")
def reduce(name: str, positional: list, kwargs: dict) -> Shape:
    (x,) = positional
    axis = kwargs.get("axis")
    if axis is None:
        raise ArgumentError(f"op '{name}' without an axis reduces over the batch axis too", argument="op",
                            hint="give the axes of each sample to reduce, e.g. axis: -1 or axis: [1, 2]")
    if name in ("argmax", "argmin") and not isinstance(axis, int):
        raise ArgumentError(f"op '{name}' takes one axis (an integer), got {list(axis)}", argument="axis")
    axes = [_axis(name, a, x.rank) for a in (axis if isinstance(axis, tuple) else (axis,))]
    if len(set(axes)) != len(axes):
        raise ArgumentError(f"op '{name}': axis {list(axis)} repeats an axis", argument="axis")
    if kwargs.get("keepdims"):
        return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


@family("reshape")
def reshape(name: str, positional: list, kwargs: dict) -> Shape:
    (x,) = positional
    newshape = kwargs.get("newshape")
    if isinstance(newshape, int):
        newshape = (newshape,)
    if not isinstance(newshape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool)
                                                  for d in newshape):
        raise TypeError("newshape")
    if not newshape or newshape[0] != -1:
        raise ArgumentError(f"op 'reshape': newshape {list(newshape)} must keep the batch axis: its first entry "
                            "is -1", argument="newshape",
                            hint="newshape includes the batch axis, as in keras.ops.reshape: e.g. [-1, 4, 3]")
    rest = newshape[1:]
    if any(d < 1 for d in rest):
        raise ArgumentError(f"op 'reshape': newshape {list(newshape)}: after the batch axis every size must be "
                            "positive (-1 stands for the batch axis)", argument="newshape")
    size = 1
    for d in x.shape[1:]:
        size = None if d is None or size is None else size * d
    target = 1
    for d in rest:
        target *= d
    if size is not None and size != target:
        raise ShapeError(f"op 'reshape': cannot reshape {x} ({size} values per sample) to {_show((None, *rest))} "
                         f"({target} values per sample)", argument="newshape")
    if size is None:
        raise ShapeError(f"op 'reshape' of {x}: the number of values per sample is known only when the model "
                         "runs, so -1 cannot be told from the batch axis", argument="newshape",
                         code="unknown-input-shape", hint="use a Reshape layer node (its target_shape excludes "
                                                          "the batch axis)")
    return (x.shape[0], *rest)


@family("transpose")
def transpose(name: str, positional: list, kwargs: dict) -> Shape:
    (x,) = positional
    axes = kwargs.get("axes")
    if axes is None:
        raise ArgumentError("op 'transpose' without axes reverses every axis, the batch axis too", argument="op",
                            hint=f"give the axes, batch axis first, e.g. axes: {[0, *range(x.rank - 1, 0, -1)]}")
    if not isinstance(axes, tuple) or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise TypeError("axes")
    normalized = [a % x.rank if -x.rank <= a < x.rank else None for a in axes]
    if len(axes) != x.rank or None in normalized or sorted(normalized) != list(range(x.rank)):
        raise ArgumentError(f"op 'transpose': axes {list(axes)} is not a permutation of the {x.rank} axes of {x}",
                            argument="axes")
    if normalized[0] != 0:
        raise ArgumentError(f"op 'transpose': axes {list(axes)} moves the batch axis", argument="axes",
                            hint="keep 0 first")
    return tuple(x.shape[a] for a in normalized)


@family("expand_dims")
def expand_dims(name: str, positional: list, kwargs: dict) -> Shape:
    (x,) = positional
    axis = kwargs.get("axis")
    axes = axis if isinstance(axis, tuple) else (axis,)
    if len(axes) != 1:
        raise TypeError("axis")
    position = _axis(name, axes[0], x.rank, new=True)
    shape = list(x.shape)
    shape.insert(position, 1)
    return tuple(shape)


@family("squeeze")
def squeeze(name: str, positional: list, kwargs: dict) -> Shape:
    (x,) = positional
    axis = kwargs.get("axis")
    if axis is None:
        if any(d is None for d in x.shape[1:]):
            raise ShapeError(f"op 'squeeze' without an axis on {x}: which axes have size 1 is known only when "
                             "the model runs", argument="op", code="unknown-input-shape",
                             hint="give the axis to remove, e.g. axis: 1")
        return (x.shape[0], *(d for d in x.shape[1:] if d != 1))
    axes = [_axis(name, a, x.rank) for a in (axis if isinstance(axis, tuple) else (axis,))]
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"op 'squeeze': axis {a} of {x} has size {x.shape[a]}, not 1", argument="axis")
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


@family("swapaxes")
def swapaxes(name: str, positional: list, kwargs: dict) -> Shape:
    (x,) = positional
    a = _axis(name, kwargs.get("axis1"), x.rank, "axis1")
    b = _axis(name, kwargs.get("axis2"), x.rank, "axis2")
    shape = list(x.shape)
    shape[a], shape[b] = shape[b], shape[a]
    return tuple(shape)


def _same(name: str, a, b, what: str, shapes) -> Any:
    """Two sizes that must be equal; one known and one known only when the model runs is refused (they
    are equal only by chance)."""
    if a is not None and b is not None and a != b:
        raise ShapeError(f"op '{name}': {what} differ ({a} vs {b}): {', '.join(_show(s) for s in shapes)}")
    if (a is None) != (b is None):
        raise ShapeError(f"op '{name}': {what} are {a if a is not None else b} and a size known only when the "
                         f"model runs: {', '.join(_show(s) for s in shapes)}", code="unknown-size-broadcast",
                         hint="they must be equal: give that axis a size in the input's shape")
    return a


@family("matmul")
def matmul(name: str, positional: list, kwargs: dict) -> Shape:
    x1, x2 = positional
    if not (isinstance(x1, TensorInfo) and isinstance(x2, TensorInfo)):
        raise ShapeError("op 'matmul' multiplies two tensors (references in 'input:')", code="bad-operand")
    shapes = [x1.shape, x2.shape]
    if x1.rank < 3 or x2.rank < 3:
        raise ShapeError(f"op 'matmul' of {x1} and {x2}: a rank-2 operand is a (batch, features) matrix, and "
                         "matmul would multiply across the batch", argument="input",
                         hint="give each sample a matrix (rank 3 or more), e.g. by expand_dims, or use a Dot layer")
    _same(name, x1.shape[-1], x2.shape[-2], "the inner sizes", shapes)
    batch = broadcast(name, [x1.shape[:-2], x2.shape[:-2]])
    return (*batch, x1.shape[-2], x2.shape[-1])


_EINSUM = re.compile(r"^([a-zA-Z]+(,[a-zA-Z]+)*)->([a-zA-Z]*)$")


@family("einsum")
def einsum(name: str, positional: list, kwargs: dict) -> Shape:
    subscripts, *operands = positional
    if not isinstance(subscripts, str):
        raise TypeError("subscripts")
    text = subscripts.replace(" ", "")
    match = _EINSUM.match(text)
    if match is None:
        raise ArgumentError(f"op 'einsum': graphspec reads subscripts of the explicit form 'abc,acd->abd' (no "
                            f"'...'), got {subscripts!r}", argument="subscripts")
    inputs, output = match.group(1).split(","), match.group(3)
    if len(inputs) != len(operands):
        raise ShapeError(f"op 'einsum': {subscripts!r} names {len(inputs)} operand(s), 'input:' gives "
                         f"{len(operands)}", code="wrong-operand-count", argument="subscripts")
    sizes: dict[str, Any] = {}
    shapes = [o.shape if isinstance(o, TensorInfo) else () for o in operands]
    for letters, operand in zip(inputs, operands):
        if not isinstance(operand, TensorInfo):
            raise ShapeError("op 'einsum' takes tensors (references in 'input:')", code="bad-operand")
        if len(letters) != operand.rank:
            raise ShapeError(f"op 'einsum': '{letters}' names {len(letters)} axes, the operand {operand} has "
                             f"{operand.rank}", argument="subscripts")
        for position, (letter, size) in enumerate(zip(letters, operand.shape)):
            if letter in sizes and position:  # the batch axis ('b') is the same batch everywhere
                _same(name, sizes[letter], size, f"the sizes of axis '{letter}'", shapes)
            sizes[letter] = size
    batch = inputs[0][0]
    if any(letters[0] != batch for letters in inputs) or not output or output[0] != batch:
        raise ArgumentError(f"op 'einsum': {subscripts!r} must keep the batch axis: the first letter of every "
                            "operand and of the output is the same", argument="subscripts",
                            hint="e.g. 'bij,bjk->bik'")
    if len(set(output)) != len(output) or any(letter not in sizes for letter in output):
        raise ArgumentError(f"op 'einsum': bad output subscripts in {subscripts!r}", argument="subscripts")
    return tuple(sizes[letter] for letter in output)
