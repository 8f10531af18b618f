"""The ``graphspec`` executable (``[project.scripts]``) and ``python -m graphspec``.

Kept apart from :mod:`graphspec.cli` so that the process settings of a short command line run are made
before Typer, Pydantic and the schema are imported: these are for a process of graphspec's own, never for
a program that imports graphspec.
"""

import os


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
    from graphspec.cli import console_main

    console_main()


if __name__ == "__main__":
    main()
