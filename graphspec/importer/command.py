"""``graphspec import`` on the command line: parse the options, import, write the spec, check it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from graphspec.importer import import_model
from graphspec.importer.source import fail


def parse_args(pairs: list[str]) -> dict:
    """``--arg KEY=VALUE`` options: VALUE read as YAML (``[96, 96, 3]``, ``false``, ``imagenet``)."""
    import yaml

    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise fail("bad-argument", f"--arg '{pair}' is not KEY=VALUE", "e.g. --arg input_shape=[96,96,3]")
        try:
            out[key] = yaml.safe_load(value) if value else None
        except yaml.YAMLError as exc:
            raise fail("bad-argument", f"--arg {key}: the value is not YAML ({exc})") from None
    return out


def run_import(source: str, output: Path | None, args: list[str], *, allow_code: bool, weights: bool,
               echo: Callable[[str], None], fold: bool = False) -> None:
    from graphspec.files import atomic_write_text
    from graphspec.pipeline import check_text

    if weights and output is None:
        raise fail("bad-argument", "--weights needs -o SPEC (the weights are written beside it)")
    if output is not None and output.suffix not in (".yaml", ".yml"):
        raise fail("bad-output-path", f"'{output}' must end in .yaml")
    result = import_model(source, kwargs=parse_args(args), allow_code=allow_code, weights=weights,
                          weights_name=(output.name.rsplit(".", 1)[0] + ".weights.h5") if output else None,
                          directory=output.parent if output is not None else None, fold=fold)
    if output is None:
        echo(result.text.rstrip("\n"))
        return
    atomic_write_text(output, result.text)
    if weights:
        result.write_weights(output.parent / result.data["weights"])
    echo(f"wrote {output}" + (f" and {result.data['weights']}" if weights else ""))
    check_text(result.text, file=str(output), directory=output.parent)  # a mistake is reported in the spec written
