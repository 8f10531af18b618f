"""The ``graphspec`` command line (Typer).

Commands are thin: they call the pipeline and render its results. Only
graphspec's own errors are caught (rendered as ``file:line:col`` diagnostics,
exit code 2); anything else is a bug and is allowed to surface. Keras and
TensorFlow are imported inside the commands that need them, never at module
level, so ``check`` and ``--help`` stay fast.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from graphspec.errors import Diagnostic, GraphspecError, render

app = typer.Typer(
    name="graphspec",
    help="Define Keras functional models in YAML: check them without TensorFlow, build and train them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USER_ERROR = 2


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


def _echo_err(text: str) -> None:
    typer.echo(text, err=True)


def report(error: GraphspecError) -> None:
    """Print every diagnostic of a failed stage, in file order."""
    for diagnostic in error.diagnostics:
        _echo_err(render(diagnostic, _lines_of(diagnostic)))
    count = len(error.errors)
    _echo_err(f"{count} error{'s' if count != 1 else ''} ({error.stage} stage)")


@contextlib.contextmanager
def user_errors():
    """The one place commands turn graphspec's own errors into diagnostics and exit code 2.

    Anything else is a bug in graphspec and is left to surface as one."""
    try:
        yield
    except GraphspecError as error:
        report(error)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _lines_of(diagnostic: Diagnostic) -> list[str] | None:
    if not diagnostic.file or diagnostic.line is None or not os.path.isfile(diagnostic.file):
        return None  # nothing to quote (and never open a FIFO or a device to find out)
    return _source_lines(diagnostic.file)


@functools.lru_cache(maxsize=8)
def _source_lines(file: str) -> list[str] | None:
    """A spec's lines, read once however many diagnostics quote it."""
    try:
        with open(file, encoding="utf-8-sig", errors="replace") as handle:
            return handle.read(8 * 1024 * 1024).splitlines()
    except OSError:
        return None


def _warn(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        _echo_err(render(diagnostic, _lines_of(diagnostic)))


def _import_tensorflow() -> None:
    """Import TensorFlow for a command that needs it (quietly: see :mod:`graphspec.backend`)."""
    from graphspec.backend import import_tensorflow

    import_tensorflow()


def _spec_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            files.append(path)
    return files


def _shape_text(info) -> str:
    if info is None:
        return "? (Keras infers at build)"
    if isinstance(info, list):
        return ", ".join(str(t) for t in info)
    return str(info)


def _table(checked) -> str:
    rows = [("node", "layer", "output shape", "params")]
    for name, spec in checked.spec.inputs.items():
        rows.append((name, "Input", str(checked.inferred.inputs[name]), "0"))
    for name, node in checked.graph.nodes.items():
        info = checked.inferred.nodes[name]
        kind = {"layer": node.layer_type, "shared": f"{node.layer_type} (shared '{node.layer_name}')",
                "sequential": "Sequential", "model": "saved model"}[node.kind]
        params = "?" if info.params is None else f"{info.params + (info.non_trainable_params or 0):,}"
        if not info.counted:
            params = "(shared)"
        rows.append((name, kind or "?", _shape_text(info.outputs), params))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = checked.inferred.total_params
    lines.append(f"total params: {'unknown until build' if total is None else f'{total:,}'}")
    return "\n".join("  " + line for line in lines)


@app.command()
def check(
    specs: Annotated[list[Path], typer.Argument(help="Spec files, or folders to search for *.yaml.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="Diagnostics and results as text or JSON.")] = OutputFormat.text,
) -> None:
    """Validate specs, resolve references and infer shapes, without importing TensorFlow."""
    from graphspec.canonical import spec_hash
    from graphspec.pipeline import check_file

    files = _spec_files(specs)
    if not files:
        _echo_err(f"no spec files found in {', '.join(str(p) for p in specs)} (looked for *.yaml, *.yml)")
        raise typer.Exit(EXIT_USER_ERROR)
    failed = 0
    results = []
    for file in files:
        try:
            checked = check_file(file)
        except GraphspecError as error:
            failed += 1
            if output_format is OutputFormat.json:
                results.append({"file": str(file), "ok": False, "stage": error.stage,
                                "diagnostics": [d.to_dict() for d in error.diagnostics]})
            else:
                report(error)
            continue
        if output_format is OutputFormat.json:
            results.append({"file": str(file), "ok": True, "hash": spec_hash(checked.graph),
                            "params": checked.inferred.total_params,
                            "diagnostics": [d.to_dict() for d in checked.warnings]})
            continue
        _warn(checked.warnings)
        if not quiet:
            typer.echo(f"{file}: ok  ({checked.spec.name}, {len(checked.graph.nodes)} nodes, {spec_hash(checked.graph)[:19]})")
            typer.echo(_table(checked))
    if output_format is OutputFormat.json:
        typer.echo(json.dumps(results, indent=1))
    elif len(files) > 1 or quiet:
        typer.echo(f"{len(files) - failed} of {len(files)} specs ok")
    if failed:
        raise typer.Exit(EXIT_USER_ERROR)


@app.command()
def build(
    spec: Annotated[Path, typer.Argument(help="The spec file.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write the .keras model.")] = None,
    summary: Annotated[bool, typer.Option(help="Print the Keras model summary.")] = True,
) -> None:
    """Build the Keras model, check 'expect:', and save it as .keras with the spec and its hash."""
    _import_tensorflow()
    from graphspec.pipeline import check_file

    with user_errors():
        checked = check_file(spec)
        _warn(checked.warnings)
        from graphspec.emit import emit, save_artifact

        model = emit(checked)
        target = output or Path(f"{checked.spec.name}.keras")
        if summary:
            model.summary(print_fn=lambda line, *args, **kwargs: typer.echo(line))
        save_artifact(checked, model, target)
    typer.echo(f"wrote {target}")


@app.command()
def schema(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the spec language (for editors and CI)."""
    from graphspec.schema import json_schema

    text = json.dumps(json_schema(), indent=1, sort_keys=False) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        from graphspec.files import AtomicFile

        with user_errors():
            with AtomicFile(output, suffix=".json") as tmp:
                tmp.write_text(text)
        typer.echo(f"wrote {output}")


@app.command()
def train(
    spec: Annotated[Optional[Path], typer.Argument(help="The spec file (optional with --resume).")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Override train.epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Override train.batch_size.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Override train.seed.")] = None,
    deterministic: Annotated[Optional[bool], typer.Option(
        "--deterministic/--no-deterministic", help="Override train.deterministic (TensorFlow op determinism).")] = None,
    sets: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override any train field: --set train.batch_size=64 (value in YAML).")] = None,
    runs: Annotated[Path, typer.Option("--runs", help="Folder holding the run directories.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: a timestamp); a folder of that "
                                                "name with nothing trained in it is reused.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the interrupted run in this folder "
                                                   "(one stopped before its first epoch starts over).")] = None,
    verbose: Annotated[Optional[int], typer.Option("--verbose", "-v", help="0 silent, 1 progress bar, 2 a line per epoch.")] = None,
) -> None:
    """Train the spec's model on its data; writes runs/<spec name>/<run name>/."""
    _import_tensorflow()
    with user_errors():
        from graphspec.train.settings import override_list

        overrides = override_list(sets, epochs=epochs, batch_size=batch_size, seed=seed, deterministic=deterministic)
        from graphspec.train.loop import TrainInterrupted, train as run_training

        try:
            result = run_training(spec, overrides=overrides, runs_root=runs, run_name=name, resume=resume,
                                  verbose=verbose, echo=_echo_err)
        except TrainInterrupted as stopped:
            for diagnostic in stopped.diagnostics:
                _echo_err(render(diagnostic))
            raise typer.Exit(stopped.exit_code) from None
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if k != "learning_rate")
    typer.echo(f"trained {len(result.history)} epochs: {shown}")
    typer.echo(f"run directory: {result.run_dir}")


def _mapping(pairs: Optional[list[str]]) -> dict[str, str]:
    result = {}
    for pair in pairs or ():
        name, sep, key = pair.partition("=")
        if not sep or not name or not key:
            raise typer.BadParameter(f"'{pair}' is not NAME=KEY", param_hint="--map")
        result[name.strip()] = key.strip()
    return result


@app.command()
def evaluate(
    target: Annotated[Path, typer.Argument(help="A run directory or a .keras file saved by graphspec.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="A .npz/.csv/.tfrecord file or an image folder "
                                                 "(default: the run's validation data).")] = None,
    mapping: Annotated[Optional[list[str]], typer.Option("--map", help="NAME=KEY: the array/feature holding an "
                                                         "input or output.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Examples per batch.")] = None,
    best: Annotated[bool, typer.Option("--best", help="Evaluate the run's best.keras instead of model.keras.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the metrics as JSON here "
                                                   "(default for a run: <run>/evaluation.json).")] = None,
) -> None:
    """Metrics of a trained model on data, per output: a table, and JSON."""
    _import_tensorflow()
    with user_errors():
        from graphspec.train.evaluate import evaluate as run_evaluation, format_table

        result = run_evaluation(target, data, mapping=_mapping(mapping), batch_size=batch_size, best=best,
                                output=output)
    typer.echo(f"{result['model']} on {result['data']} ({result['examples']:,} examples)")
    typer.echo(format_table(result["per_output"]))
    if "written" in result:
        typer.echo(f"wrote {result['written']}")


@app.command()
def predict(
    target: Annotated[Path, typer.Argument(help="A run directory or a .keras file saved by graphspec.")],
    data: Annotated[Optional[Path], typer.Option("--data", help="A .npz/.csv/.tfrecord file or an image folder "
                                                 "(default: the run's validation data).")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="predictions.npz (one array per output) or .csv.")]
    = Path("predictions.npz"),
    mapping: Annotated[Optional[list[str]], typer.Option("--map", help="NAME=KEY: the array/feature holding an "
                                                         "input.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Examples per batch.")] = None,
    best: Annotated[bool, typer.Option("--best", help="Use the run's best.keras instead of model.keras.")] = False,
) -> None:
    """Predict every example, batch by batch, into an NPZ or CSV with one array/column group per output."""
    _import_tensorflow()
    with user_errors():
        from graphspec.train.predict import predict as run_prediction

        result = run_prediction(target, data, output, mapping=_mapping(mapping), batch_size=batch_size, best=best)
    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in result["arrays"].items())
    typer.echo(f"wrote {result['output']}: {result['examples']:,} examples ({shapes})")


def main() -> None:
    # TensorFlow's C++ log lines after start-up (warnings about retracing, oneDNN notes) are not
    # for graphspec's users; its real errors reach Python as exceptions. Set it to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    app()


if __name__ == "__main__":
    main()
