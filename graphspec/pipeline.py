"""The driver: runs the stages in order and stops after the first one that reports errors.

    load -> expand -> schema -> resolve -> infer          (pure Python: `graphspec check`)
                                 -> emit        (Keras: `graphspec build`)
                                    -> train    (Keras: `graphspec train`)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path as FsPath

from graphspec.errors import Diagnostic
from graphspec.infer import InferredGraph, infer
from graphspec.infer.expect import check_expectations
from graphspec.loader import LoadedSpec, load, loads
from graphspec.plugins import declared_builtin_plugins, using
from graphspec.resolve import Graph, resolve
from graphspec.schema import Spec, validate
from graphspec.schema.model import needs_expansion


@dataclass
class CheckedSpec:
    """A spec that passed every pure-Python stage."""

    loaded: LoadedSpec
    spec: Spec
    graph: Graph
    inferred: InferredGraph
    path: FsPath | None = None

    @property
    def warnings(self) -> list[Diagnostic]:
        return self.graph.warnings + self.inferred.warnings

    @property
    def directory(self) -> FsPath:
        """The folder paths in the spec are relative to (saved models)."""
        return self.path.parent if self.path is not None else FsPath.cwd()


def check_loaded(loaded: LoadedSpec, path: FsPath | None = None, *, check_files: bool = True,
                 params: dict | None = None, variant: str | None = None,
                 param_origin: dict[str, str] | None = None) -> CheckedSpec:
    """Run the pure-Python stages on loaded data (``check_files``: see :func:`resolve`).

    ``params`` (model parameter values) and ``variant`` apply to a language 1.1 spec (see
    :mod:`graphspec.expand`); ``loaded`` is the spec as written, ``CheckedSpec.loaded`` the expanded data."""
    with using(declared_builtin_plugins(loaded.data)):  # graphspec's own plugins, if the spec declares them
        if params or variant is not None or needs_expansion(loaded.data):
            from graphspec.expand import expand  # imported for the specs that use blocks, repeat or parameters

            loaded = expand(loaded, params=params, variant=variant, param_origin=param_origin)
        spec = validate(loaded)
        graph = resolve(spec, loaded.source, base_dir=path.parent if path is not None else None,
                        check_files=check_files)
        inferred = infer(graph)
        check_expectations(inferred)
    return CheckedSpec(loaded=loaded, spec=spec, graph=graph, inferred=inferred, path=path)


def check_file(path: str | FsPath, *, params: dict | None = None, variant: str | None = None,
               param_origin: dict[str, str] | None = None) -> CheckedSpec:
    """Load, validate, resolve and infer a spec file; raises a :class:`GraphspecError` subclass."""
    return check_loaded(load(path), FsPath(path), params=params, variant=variant, param_origin=param_origin)


def check_text(text: str, file: str | None = None, directory: str | FsPath | None = None, *,
               params: dict | None = None, variant: str | None = None) -> CheckedSpec:
    """Like :func:`check_file`, for spec text held in memory."""
    base = FsPath(directory) / (file or "spec.yaml") if directory is not None else None
    return check_loaded(loads(text, file=file), base, params=params, variant=variant)
