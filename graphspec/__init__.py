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
    from collections.abc import Sequence

    from graphspec.pipeline import CheckedSpec

__version__ = "0.1.0"

__all__ = [
    "Diagnostic", "EmitError", "GraphspecError", "InferError", "LoadError", "ResolveError", "SchemaError",
    "TrainError", "build", "load", "loads", "__version__",
]


def load(path, plugins: "Sequence[str] | None" = None, *, params: dict | None = None, variant: str | None = None) -> "CheckedSpec":
    """Load, validate, resolve and shape-check a spec file (never imports TensorFlow).

    ``params`` gives model parameters (``{"width": 96}``, checked against their declared types) and
    ``variant`` chooses one of the spec's ``variants:`` (spec language 1.1)."""
    from graphspec.pipeline import check_file

    with _plugins(plugins):  # plugins=["my_team_layers"]: enable them (imports them) for this spec
        return check_file(path, params=params, variant=variant)


def loads(text: str, file: str | None = None, directory=None, plugins: "Sequence[str] | None" = None, *, params: dict | None = None,
          variant: str | None = None) -> "CheckedSpec":
    """Like :func:`load`, for spec text in memory (``directory`` anchors relative paths)."""
    from graphspec.pipeline import check_text

    with _plugins(plugins):
        return check_text(text, file=file, directory=directory, params=params, variant=variant)


def build(spec, *, compile: bool = True, plugins: "Sequence[str] | None" = None):
    """A compiled ``keras.Model`` from a spec path or a :func:`load` result."""
    from graphspec.pipeline import CheckedSpec, check_file

    with _plugins(plugins):  # a load() result keeps the plugins it was checked with
        checked = spec if isinstance(spec, CheckedSpec) else check_file(spec)
    _import_tensorflow_quietly()
    from graphspec.emit import emit

    return emit(checked, compile=compile)


def _plugins(names):
    """A block with the plugins ``names`` (import names, see docs/plugins.md) enabled."""
    from graphspec.plugins import load_plugins, using

    return using(load_plugins(names))


def _import_tensorflow_quietly() -> None:
    from graphspec.backend import import_tensorflow

    import_tensorflow()
