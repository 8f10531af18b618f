"""The ``graphspec`` executable (``[project.scripts]``) and ``python -m graphspec``.

Kept apart from :mod:`graphspec.cli` so that the process settings of a short command line run are made
before Typer, Pydantic and the schema are imported: these are for a process of graphspec's own, never for
a program that imports graphspec.
"""

import os
import sys
import types


def main() -> None:
    """Run the command line in this process, which it owns, and end it with the command."""
    from graphspec.backend import collect_garbage_as_a_short_process

    collect_garbage_as_a_short_process()
    # Third-party Pydantic plugins (observability for an application's own models) have nothing to
    # observe in graphspec's spec schema, and finding them reads the metadata of every installed
    # distribution when the first validator is built (5-10 ms of a fresh check, more with TensorFlow
    # installed). Typer builds its parameter validators with plugins off for the same reason. An
    # explicit setting of the user's own is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import_on_first_use_of_package_metadata("pydantic.plugin._loader")
    from graphspec.cli import console_main

    console_main()


class _PackageMetadataOnFirstUse(types.ModuleType):
    """Stands in for :mod:`importlib.metadata` while one module is imported; see
    :func:`import_on_first_use_of_package_metadata`."""

    def __getattr__(self, name: str):
        if sys.modules.get("importlib.metadata") is self:
            raise AttributeError(name)  # still importing: the module wants more than entry_points
        import importlib

        return getattr(importlib.import_module("importlib.metadata"), name)


def _entry_points(**selection):
    if isinstance(sys.modules.get("importlib.metadata"), _PackageMetadataOnFirstUse):
        del sys.modules["importlib.metadata"]  # called while the module is imported: the real one from now on
    from importlib.metadata import entry_points

    return entry_points(**selection)


def import_on_first_use_of_package_metadata(module: str) -> None:
    """Import ``module`` so that it imports :mod:`importlib.metadata` only when it first calls it.

    Pydantic's plugin loader (``pydantic.plugin._loader``), imported when the first validator is built,
    takes ``entry_points`` from :mod:`importlib.metadata` at its top, and importing that (with the email,
    zipfile, csv and tempfile modules it stands on) is ~9 ms of a fresh ``check``: spent even though the
    executable switches plugins off, when the loader never calls it. So the module's own body (its package
    is imported first, as usual) runs while a stand-in is in :data:`sys.modules`: its ``entry_points``
    imports the real one when called, and any other attribute read later comes from the real module, so
    plugin discovery, whenever it runs, is Pydantic's own. If the module wants anything else from
    :mod:`importlib.metadata` while it is imported (another Pydantic), or its import fails for any other
    reason, it is left to be imported as usual, where it would have been. The executable starts no thread
    before this, so nothing else can see the stand-in.
    """
    if "importlib.metadata" in sys.modules or module in sys.modules:
        return
    package = module.rpartition(".")[0]
    try:
        if package:
            __import__(package)
    except Exception:  # noqa: BLE001 (the usual import, later, reports it where it belongs)
        return
    if "importlib.metadata" in sys.modules or module in sys.modules:
        return  # the package imported either itself (review: a stand-in then replaced the real module)
    stand_in = _PackageMetadataOnFirstUse("importlib.metadata")
    stand_in.entry_points = _entry_points
    sys.modules["importlib.metadata"] = stand_in
    try:
        __import__(module)
    except Exception:  # noqa: BLE001 (the import system has taken the half-imported module out of sys.modules)
        pass
    finally:
        if sys.modules.get("importlib.metadata") is stand_in:
            del sys.modules["importlib.metadata"]


if __name__ == "__main__":
    main()
