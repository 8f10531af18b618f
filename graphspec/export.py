"""``graphspec export``: a built or trained model as a serving artifact, through Keras' ``model.export``.

Formats: ``saved_model`` (TensorFlow SavedModel, signature ``serving_default``), ``tflite`` (a LiteRT
flatbuffer, signature ``serving_default``) and ``onnx`` (through tf2onnx: the ``onnx`` extra).

The artifact keeps the spec's names: every input by its name, every output by its *output* name
(a list-form ``outputs: [a, b]`` would otherwise come out as ``output_0``, ``output_1``): the model is
re-wrapped, sharing its layers and weights, with its outputs as a mapping keyed by the spec's names.
"""

from __future__ import annotations

import os
import shutil
import re
from dataclasses import dataclass, field
from pathlib import Path

from graphspec.errors import Diagnostic, GraphspecError

__all__ = ["FORMATS", "ExportError", "Exported", "export", "load_source", "named_model"]

FORMATS = {"saved_model": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
"""graphspec's format name -> the name ``keras.Model.export`` knows it by."""


class ExportError(GraphspecError):
    stage = "export"


@dataclass
class Exported:
    path: Path
    format: str
    inputs: list[str]
    outputs: list[str]
    flex_ops: list[str] = field(default_factory=list)
    """TensorFlow ops a .tflite artifact runs through the Flex delegate (select TF ops), not LiteRT builtins."""


def load_source(target: str | os.PathLike, *, overrides=(), plugins_enabled: bool = False):
    """``(checked, model)`` for a spec file (built, untrained weights), a run directory or a ``.keras`` file."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from graphspec.emit import emit
        from graphspec.overrides import check_with_overrides

        checked = check_with_overrides(path, overrides)
        return checked, emit(checked, compile=False)
    from graphspec.train.evaluate import load_model, open_target

    opened = open_target(path)
    return opened.checked, load_model(opened)


def named_model(checked, model):
    """The model with its outputs as a mapping keyed by the spec's output names (layers and weights shared)."""
    import keras

    names = list(checked.graph.outputs)
    outputs = model.outputs
    structure = getattr(model, "_outputs_struct", None)
    if isinstance(structure, dict):
        # A mapping-form model: Keras already keys its outputs by the spec's names.
        by_name = dict(structure)
    else:
        if len(outputs) != len(names):  # not a model of this spec: keep what Keras has
            return model
        by_name = dict(zip(names, outputs))
    # The inputs stay a list: the exported signatures name them after the Input tensors (the spec's names).
    return keras.Model(list(model.inputs), by_name, name=model.name)


def _signature(model):
    import tensorflow as tf

    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    return [specs] if len(specs) > 1 else specs


def export(checked, model, output: str | os.PathLike, fmt: str) -> Exported:
    """Write ``model`` (of the spec ``checked``) to ``output`` in format ``fmt``; raises :class:`ExportError`."""
    if fmt not in FORMATS:
        raise ExportError([Diagnostic(code="bad-format", message=f"unknown export format '{fmt}'",
                                      hint=f"use one of {', '.join(FORMATS)}")])
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import tf2onnx  # noqa: F401
        except ImportError:
            raise ExportError([Diagnostic(code="missing-extra", message="ONNX export needs tf2onnx and onnx",
                                          hint="pip install 'graphspec[onnx]'")]) from None
    out = Path(output)
    wrapped = named_model(checked, model)
    kwargs = {"input_signature": _signature(wrapped)} if fmt == "onnx" else {}
    if out.exists() and fmt == "saved_model" and out.is_dir() and any(out.iterdir()):
        raise ExportError([Diagnostic(code="exists", message=f"'{out}' exists and is not empty",
                                      hint="remove it or name another folder")])
    try:
        wrapped.export(str(out), format=FORMATS[fmt], verbose=False, **kwargs)
    except Exception as exc:  # a converter's refusal: the model uses something the format lacks
        if fmt == "saved_model" and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else type(exc).__name__
        raise ExportError([Diagnostic(code="export-failed", message=f"{fmt} export failed: {first}")]) from None
    flex = sorted({m.decode() for m in re.findall(rb"Flex[A-Z][A-Za-z0-9]+", out.read_bytes())}) if fmt == "tflite" else []
    return Exported(out, fmt, [t.name for t in wrapped.inputs], list(checked.graph.outputs), flex)
