"""graphspec: Keras functional models as reviewed, version-controlled YAML specs.

Python API::

    import graphspec
    checked = graphspec.load("specs/seed000_multimodal.yaml")   # pure Python: no TensorFlow import
    model = graphspec.build(checked)                              # a plain, compiled keras.Model

Every user mistake raises a :class:`graphspec.errors.GraphspecError` subclass whose
``diagnostics`` point at ``file:line:col`` in the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphspec.errors import (
    Diagnostic,
    EmitError,
    GraphspecError,
    InferError,
    LoadError,
    ResolveError,
    SchemaError,
    TrainError,
)

if TYPE_CHECKING:
    from graphspec.pipeline import CheckedSpec

__version__ = "0.1.0"

__all__ = [
    "Diagnostic", "EmitError", "GraphspecError", "InferError", "LoadError", "ResolveError", "SchemaError",
    "TrainError", "build", "load", "loads", "__version__",
]


def load(path, *, params: dict | None = None, variant: str | None = None) -> "CheckedSpec":
    """Load, validate, resolve and shape-check a spec file (never imports TensorFlow).

    ``params`` gives model parameters (``{"width": 96}``, checked against their declared types) and
    ``variant`` chooses one of the spec's ``variants:`` (spec language 1.1)."""
    from graphspec.pipeline import check_file

    return check_file(path, params=params, variant=variant)


def loads(text: str, file: str | None = None, directory=None, *, params: dict | None = None,
          variant: str | None = None) -> "CheckedSpec":
    """Like :func:`load`, for spec text in memory (``directory`` anchors relative paths)."""
    from graphspec.pipeline import check_text

    return check_text(text, file=file, directory=directory, params=params, variant=variant)


def build(spec, *, compile: bool = True):
    """A compiled ``keras.Model`` from a spec path or a :func:`load` result."""
    from graphspec.pipeline import CheckedSpec, check_file

    checked = spec if isinstance(spec, CheckedSpec) else check_file(spec)
    _import_tensorflow_quietly()
    from graphspec.emit import emit

    return emit(checked, compile=compile)


def _import_tensorflow_quietly() -> None:
    from graphspec.backend import import_tensorflow

    import_tensorflow()
