"""The ``graphspec`` command line (Typer).

Commands are thin: they call the pipeline and render its results. Only
graphspec's own errors are caught (rendered as ``file:line:col`` diagnostics,
exit code 2); anything else is a bug and is allowed to surface. Keras and
TensorFlow are imported inside the commands that need them, never at module
level, so ``check`` and ``--help`` stay fast.

No ``from __future__ import annotations`` here: Typer reads every command's
annotations at each start, and evaluating them from strings cost ~10 ms.
"""

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
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from graphspec import __version__

        typer.echo(f"graphspec {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print graphspec's version and exit.")] = False,
) -> None:
    """Define Keras functional models in YAML: check them without TensorFlow, build and train them."""

EXIT_USER_ERROR = 2

PluginsOption = Annotated[Optional[list[str]], typer.Option(
    "--plugin", help="Enable a plugin of custom layers: a Python module or package, by import name "
                     "(repeatable; it is imported, so Keras is too). See docs/plugins.md.")]


def _enable_plugins(plugins: Optional[list[str]]) -> None:
    """Import the plugins named on the command line and enable them for this command."""
    if not plugins:
        return
    from graphspec.plugins import BUILTIN_PLUGINS, enable

    if any(name not in BUILTIN_PLUGINS for name in plugins):
        _import_tensorflow()  # a plugin imports Keras: quietly, as the commands that need it do (the built-in
        # ones only when a model is built, so check --plugin graphspec.plugins.applications stays without it)
    with user_errors():
        enable(plugins)


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


class CheckFormat(str, enum.Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


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

    with user_errors():  # not installed (the front-end install): say what to install
        import_tensorflow()


SET_HELP = ("Override any value of the spec: --set PATH=VALUE, e.g. --set compile.optimizer.learning_rate=0.01, "
            "--set nodes.dense1.units=128, --set train.validation.split=0.1 (VALUE is YAML; quote flow values for "
            "the shell: --set 'train.validation={split: 0.1}'). Repeatable.")


VARIANT_HELP = "Build this variant of the spec's 'variants:' (language 1.1), e.g. --variant resnet101."


def _overrides(sets: Optional[list[str]], variant: Optional[str] = None) -> list:
    from graphspec.overrides import Override, override_list

    result = override_list(sets)
    if variant is not None:  # the same as --set variant=NAME, named as the option in diagnostics
        result.append(Override(("variant",), variant, f"--variant {variant}"))
    return result


def _precheck_train(spec: Optional[Path], resume: Optional[Path], overrides: list,
                    runs: Optional[Path] = None, name: Optional[str] = None):
    """The pure-Python stages of what ``train`` will check (the spec, or the resumed run's spec, with the
    recorded and the new overrides), and whether another ``train`` holds the run's folder, before
    TensorFlow is imported; raises GraphspecError. Returns the checked spec, which ``train`` then uses
    rather than checking it again (None: nothing to check)."""
    from graphspec.overrides import Override, check_with_overrides

    if resume is not None:
        from graphspec.train.rundir import RunLock, read_run

        RunLock(Path(resume)).refuse_if_held()
        recorded = read_run(Path(resume))
        if spec is None:
            spec = Path(recorded.get("spec_path") or Path(resume) / "spec.yaml")
        overrides = [Override(p, v) for p, v in recorded.get("overrides", [])] + list(overrides)
    if spec is None:
        return None  # train says what is missing
    checked = check_with_overrides(spec, overrides)
    if resume is None and runs is not None and name is not None:
        from graphspec.train.rundir import RunLock, check_run_name

        check_run_name(name)
        RunLock(Path(runs) / checked.spec.name / name).refuse_if_held()
    return checked


def _precheck_target(target: Path) -> None:
    """The pure-Python stages on the spec of a run directory (or of a .keras file's metadata), before
    TensorFlow; raises GraphspecError. Anything it cannot read is left to the command to report."""
    from graphspec.loader import LoadedSpec, loads
    from graphspec.overrides import check_loaded_with_overrides

    path = Path(target)
    if path.is_dir():
        from graphspec.train.rundir import read_run

        info = read_run(path)
        try:
            text = (path / "spec.yaml").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return
        check_loaded_with_overrides(loads(text, file=str(path / "spec.yaml")), info.get("overrides", []),
                                    Path(info.get("spec_path") or path / "spec.yaml"))
    elif path.suffix == ".keras" and path.is_file():
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                canonical = json.loads(archive.read("metadata.json")).get("graphspec", {}).get("canonical_spec")
        except Exception:  # not a zip, no metadata: the command reports it
            return
        if canonical:
            from graphspec.pipeline import check_loaded
            from graphspec.source import SourceMap

            check_loaded(LoadedSpec(canonical, SourceMap(file=str(path))), Path.cwd() / "spec.yaml",
                         check_files=False)


def _located(diagnostic: Diagnostic, file) -> Diagnostic:
    """The diagnostic with its file (a problem of the run names the spec it was found in)."""
    from dataclasses import replace

    return diagnostic if diagnostic.file else replace(diagnostic, file=str(file))


def _spec_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            files.append(path)
    return files


def _table(checked) -> str:
    from graphspec.infer.tensor import outputs_text

    rows = [("node", "layer", "output shape", "params")]
    for name, spec in checked.spec.inputs.items():
        rows.append((name, "Input", str(checked.inferred.inputs[name]), "0"))
    expansion = getattr(checked.graph.source, "expansion", None)
    groups = _instance_groups(checked, expansion) if expansion is not None else None
    open_chain: list = []
    for name, node in checked.graph.nodes.items():
        info = checked.inferred.nodes[name]
        indent = ""
        if groups is not None:
            # Nodes expanded from blocks are grouped under a row per block instance (nested ones indented).
            chain = []
            instance = expansion.node_instance.get(name)
            while instance is not None:
                chain.append(instance)
                instance = instance.parent
            chain.reverse()
            common = 0
            while common < min(len(chain), len(open_chain)) and chain[common] is open_chain[common]:
                common += 1
            for depth in range(common, len(chain)):
                total = groups.get(id(chain[depth]))
                rows.append(("  " * depth + chain[depth].label(), "block", "",
                             "?" if total is None else f"{total:,}"))
            open_chain = chain
            indent = "  " * len(chain)
        kind = {"layer": node.layer_type, "shared": f"{node.layer_type} (shared '{node.layer_name}')",
                "sequential": "Sequential", "model": "saved model",
                "op": f"op {getattr(node.spec, 'op', '')}"}[node.kind]
        params = "?" if info.params is None else f"{info.params + (info.non_trainable_params or 0):,}"
        if not info.counted:
            params = "(shared)"
        rows.append((indent + name, kind or "?", outputs_text(info.outputs), params))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = checked.inferred.total_params
    lines.append(f"total params: {'unknown until build' if total is None else f'{total:,}'}")
    return "\n".join("  " + line for line in lines)


def _other_variants(file, checked, overrides) -> dict:
    """The spec checked with each of its other variants; a failing one raises, its diagnostics noting the variant."""
    from dataclasses import replace

    from graphspec.overrides import Override, check_with_overrides

    expansion = getattr(checked.graph.source, "expansion", None)
    variants = expansion.written.get("variants") if expansion is not None else None
    if not isinstance(variants, dict):
        return {}
    result = {}
    for name in variants:
        if name == expansion.variant:
            continue
        try:
            result[name] = check_with_overrides(file, list(overrides) + [Override(("variant",), name, f"--variant {name}")])
        except GraphspecError as error:
            raise type(error)([replace(d, notes=tuple(d.notes) + (f"in variant '{name}'",))
                               for d in error.diagnostics]) from None
    return result


def _instance_groups(checked, expansion) -> dict[int, int | None]:
    """Parameters of each block instance (its nodes and nested instances'), by ``id`` of the instance."""
    totals: dict[int, int | None] = {}
    for name, instance in expansion.node_instance.items():
        info = checked.inferred.nodes.get(name)
        count = None if info is None or info.params is None else \
            (info.params + (info.non_trainable_params or 0) if info.counted else 0)
        while instance is not None:
            key = id(instance)
            if key not in totals or totals[key] is not None:
                totals[key] = None if count is None else totals.get(key, 0) + count
            instance = instance.parent
    return totals


@app.command()
def check(
    specs: Annotated[list[Path], typer.Argument(help="Spec files, or folders to search for *.yaml.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only problems.")] = False,
    plugins: PluginsOption = None,
    output_format: Annotated[CheckFormat, typer.Option(
        "--format", help="text; json; github (workflow annotations: ::error file=...,line=...,col=...); "
                         "sarif (SARIF 2.1.0 for code scanning). See docs/ci.md.")] = CheckFormat.text,
    sets: Annotated[Optional[list[str]], typer.Option("--set", help=SET_HELP)] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help=VARIANT_HELP)] = None,
    tables: Annotated[Optional[bool], typer.Option(
        "--tables/--no-tables", help="Print each spec's table of nodes, shapes and parameters (default: only when "
                                     "one spec is checked; with several, one line per spec).")] = None,
) -> None:
    """Validate specs, resolve references and infer shapes, without importing TensorFlow."""
    from graphspec.canonical import graph_hash, spec_hash

    _enable_plugins(plugins)

    with user_errors():
        overrides = _overrides(sets, variant)

    def check_file(file):
        from graphspec.overrides import check_with_overrides

        return check_with_overrides(file, overrides)

    files = _spec_files(specs)
    if not files:
        _echo_err(f"no spec files found in {', '.join(str(p) for p in specs)} (looked for *.yaml, *.yml)")
        raise typer.Exit(EXIT_USER_ERROR)
    failed = 0
    results = []
    annotated: list[Diagnostic] = []  # github / sarif: every diagnostic of every file
    annotations = output_format in (CheckFormat.github, CheckFormat.sarif)
    show_tables = tables if tables is not None else len(files) == 1
    for file in files:
        try:
            checked = check_file(file)
            # Language 1.1: every variant is a model of its own, and checked (unless --variant chose one).
            others = _other_variants(file, checked, overrides) if variant is None else {}
        except GraphspecError as error:
            failed += 1
            if annotations:
                annotated.extend(_located(d, file) for d in error.diagnostics)
            elif output_format is CheckFormat.json:
                results.append({"file": str(file), "ok": False, "stage": error.stage,
                                "diagnostics": [d.to_dict() for d in error.diagnostics]})
            else:
                report(error)
            continue
        if annotations:
            annotated.extend(_located(d, file) for d in checked.warnings)
            continue
        if output_format is CheckFormat.json:
            results.append({"file": str(file), "ok": True, "hash": spec_hash(checked.graph),
                            "graph_hash": graph_hash(checked),
                            "params": checked.inferred.total_params,
                            "diagnostics": [d.to_dict() for d in checked.warnings]})
            if others:
                results[-1]["variants"] = {name: {"graph_hash": graph_hash(other),
                                                  "params": other.inferred.total_params}
                                           for name, other in others.items()}
            continue
        _warn(checked.warnings)
        if not quiet:
            typer.echo(f"{file}: ok  ({checked.spec.name}, {len(checked.graph.nodes)} nodes, {spec_hash(checked.graph)[:19]})")
            if show_tables:
                typer.echo(_table(checked))
            for name, other in others.items():
                total = other.inferred.total_params
                typer.echo(f"  variant {name}: ok  ({len(other.graph.nodes)} nodes, "
                           f"{'? params' if total is None else f'{total:,} params'})")
    if output_format is CheckFormat.json:
        typer.echo(json.dumps(results, indent=1))
    elif output_format is CheckFormat.github:
        from graphspec.annotations import github_annotations

        for line in github_annotations(annotated):
            typer.echo(line)
        typer.echo(f"{len(files) - failed} of {len(files)} specs ok")
    elif output_format is CheckFormat.sarif:
        from graphspec.annotations import sarif

        typer.echo(json.dumps(sarif(annotated), indent=1))
    elif len(files) > 1 or quiet:
        typer.echo(f"{len(files) - failed} of {len(files)} specs ok")
    if failed:
        raise typer.Exit(EXIT_USER_ERROR)


@app.command()
def build(
    spec: Annotated[Path, typer.Argument(help="The spec file.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write the .keras model.")] = None,
    summary: Annotated[bool, typer.Option(help="Print the Keras model summary.")] = True,
    plugins: PluginsOption = None,
    sets: Annotated[Optional[list[str]], typer.Option("--set", help=SET_HELP)] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help=VARIANT_HELP)] = None,
) -> None:
    """Build the Keras model, check 'expect:', and save it as .keras with the spec and its hash."""
    _enable_plugins(plugins)
    from graphspec.overrides import check_with_overrides

    with user_errors():  # the pure-Python stages first: a spec error costs no TensorFlow import
        checked = check_with_overrides(spec, _overrides(sets, variant))
    _warn(checked.warnings)
    _import_tensorflow()
    with user_errors():
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
    spec: Annotated[Optional[Path], typer.Option("--spec", help="Specialize the schema for this spec's blocks: "
                                                 "editors complete and check each block call's parameters.")] = None,
    plugins: PluginsOption = None,
) -> None:
    """Print the JSON Schema of the spec language (for editors and CI); with --plugin, the plugins' layer types
    and their arguments too."""
    _enable_plugins(plugins)
    from graphspec.schema import json_schema

    document = json_schema()
    if spec is not None:
        from graphspec.expand import spec_sections
        from graphspec.schema.blocks import with_spec_blocks

        with user_errors():
            sections = spec_sections(spec)
        document = with_spec_blocks(document, sections.blocks or {}, sections.params)
    text = json.dumps(document, indent=1, sort_keys=False) + "\n"
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
    sets: Annotated[Optional[list[str]], typer.Option("--set", help=SET_HELP)] = None,
    runs: Annotated[Path, typer.Option("--runs", help="Folder holding the run directories.")] = Path("runs"),
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: a timestamp); a folder of that "
                                                "name with nothing trained in it is reused.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the interrupted run in this folder "
                                                   "(one stopped before its first epoch starts over); with --epochs N, "
                                                   "extend a run, also a completed one, to N epochs in all.")] = None,
    verbose: Annotated[Optional[int], typer.Option("--verbose", "-v", help="0 silent, 1 progress bar, 2 a line per epoch.")] = None,
    plugins: PluginsOption = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help=VARIANT_HELP)] = None,
) -> None:
    """Train the spec's model on its data; writes runs/<spec name>/<run name>/."""
    _enable_plugins(plugins)
    with user_errors():  # the pure-Python stages first: a spec error costs no TensorFlow import
        from graphspec.overrides import Override, override_list

        overrides = override_list(sets, epochs=epochs, batch_size=batch_size, seed=seed, deterministic=deterministic)
        if variant is not None:
            overrides.append(Override(("variant",), variant, f"--variant {variant}"))
        checked = _precheck_train(spec, resume, overrides, runs, name)
    _import_tensorflow()
    with user_errors():
        from graphspec.train.loop import TrainInterrupted, train as run_training

        try:
            result = run_training(spec, overrides=overrides, runs_root=runs, run_name=name, resume=resume,
                                  verbose=verbose, echo=_echo_err, checked=checked)
        except TrainInterrupted as stopped:
            for diagnostic in stopped.diagnostics:
                _echo_err(render(diagnostic))
            raise typer.Exit(stopped.exit_code) from None
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if k != "learning_rate")
    trained = len(result.history)
    if result.final_epoch is not None and result.final_epoch != trained:
        held = f"the model holds epoch {result.final_epoch} (early stopping restored its best weights)"
    else:
        held = f"the model holds epoch {result.final_epoch}"
    typer.echo(f"trained {trained} epochs; {held}: {shown}")
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
    plugins: PluginsOption = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the metrics as JSON here "
                                                   "(default for a run: <run>/evaluation.json).")] = None,
) -> None:
    """Metrics of a trained model on data, per output: a table, and JSON."""
    _enable_plugins(plugins)
    with user_errors():  # the run's spec is checked before TensorFlow is imported
        _precheck_target(target)
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
    plugins: PluginsOption = None,
) -> None:
    """Predict every example, batch by batch, into an NPZ or CSV with one array/column group per output.

    Classification outputs also get their predicted class and its probability (see docs/training.md)."""
    _enable_plugins(plugins)
    with user_errors():  # the run's spec is checked before TensorFlow is imported
        _precheck_target(target)
    _import_tensorflow()
    with user_errors():
        from graphspec.train.predict import predict as run_prediction

        result = run_prediction(target, data, output, mapping=_mapping(mapping), batch_size=batch_size, best=best)
    shapes = ", ".join(f"{name} {tuple(shape)}" for name, shape in result["arrays"].items())
    typer.echo(f"wrote {result['output']}: {result['examples']:,} examples ({shapes})")


class ConfigFormat(str, enum.Enum):
    yaml = "yaml"
    json = "json"


@app.command()
def config(
    spec: Annotated[Path, typer.Argument(help="The spec file.")],
    sets: Annotated[Optional[list[str]], typer.Option("--set", help=SET_HELP)] = None,
    output_format: Annotated[ConfigFormat, typer.Option("--format", help="Print the spec as YAML or JSON.")]
    = ConfigFormat.yaml,
) -> None:
    """Print the effective spec (overrides applied, graphspec's defaults filled in) and its hash; no TensorFlow.

    The printed YAML is itself a spec with the same hash: what `train` with the same --set would train."""
    from graphspec.overrides import check_with_overrides, effective_spec

    with user_errors():
        checked = check_with_overrides(spec, _overrides(sets))
    _warn(checked.warnings)
    data, digest = effective_spec(checked)
    if output_format is ConfigFormat.json:
        typer.echo(json.dumps({"hash": digest, "spec": data}, indent=1, ensure_ascii=False, allow_nan=True))
        return
    import yaml

    typer.echo(f"# effective spec of {spec} (graphspec config); hash {digest}")
    typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100).rstrip())


@app.command()
def plot(
    spec: Annotated[Path, typer.Argument(help="The spec file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The picture: .svg, .mmd (Mermaid), .dot or .png.")],
    sets: Annotated[Optional[list[str]], typer.Option("--set", help=SET_HELP)] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help=VARIANT_HELP)] = None,
) -> None:
    """Draw the architecture: each node's type, output shape and parameters; blocks as clusters; no TensorFlow."""
    from graphspec.overrides import check_with_overrides
    from graphspec.plot import PlotError, write_plot

    with user_errors():
        checked = check_with_overrides(spec, _overrides(sets, variant))
    _warn(checked.warnings)
    try:
        pg = write_plot(checked, output, warn=lambda message: _echo_err(f"warning: {message}"))
    except PlotError as error:
        _echo_err(f"error: {error}")
        raise typer.Exit(EXIT_USER_ERROR) from None
    typer.echo(f"wrote {output} ({len(pg.nodes)} boxes, {len(pg.edges)} edges, {len(pg.clusters)} block instances)")


class ExportFormat(str, enum.Enum):
    saved_model = "saved_model"
    tflite = "tflite"
    onnx = "onnx"


@app.command()
def export(
    target: Annotated[Path, typer.Argument(help="A spec file (exported with untrained weights), a run directory "
                                                "or a .keras file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write: a folder (saved_model) or a "
                                                                 "file (.tflite, .onnx).")],
    export_format: Annotated[ExportFormat, typer.Option("--format", help="saved_model, tflite or onnx "
                                                                         "(onnx needs the 'onnx' extra).")]
    = ExportFormat.saved_model,
    plugins: PluginsOption = None,
    sets: Annotated[Optional[list[str]], typer.Option("--set", help=SET_HELP)] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help=VARIANT_HELP)] = None,
) -> None:
    """Export a model for serving with Keras' model.export: inputs and outputs keep the spec's names."""
    _enable_plugins(plugins)
    with user_errors():
        overrides = _overrides(sets, variant)
        if target.suffix in (".yaml", ".yml"):
            from graphspec.overrides import check_with_overrides

            check_with_overrides(target, overrides)  # a spec mistake costs no TensorFlow import
        else:
            if overrides:
                raise GraphspecError([Diagnostic(code="bad-option", message="--set and --variant apply to a spec; "
                                                 f"'{target}' is a trained model (its spec is fixed)",
                                                 hint="export the spec itself, or train a run with the overrides")])
            _precheck_target(target)
    _import_tensorflow()
    with user_errors():
        from graphspec.export import export as export_model, load_source

        checked, model = load_source(target, overrides=overrides)
        done = export_model(checked, model, output, export_format.value)
    typer.echo(f"wrote {done.path} ({done.format}; inputs {', '.join(done.inputs)}; outputs {', '.join(done.outputs)})")
    if done.flex_ops:
        _echo_err(f"warning: {done.path} uses TensorFlow ops outside LiteRT's builtins ({', '.join(done.flex_ops)}): "
                  "the interpreter running it needs the Flex delegate (select TF ops)")


@app.command()
def lsp(plugins: PluginsOption = None) -> None:
    """Run the language server over stdio (for editors: diagnostics, hover, completion; see docs/tools.md)."""
    from graphspec.backend import collect_garbage_as_python_does
    from graphspec.lsp import main as serve
    from graphspec.plugins import active_plugins

    collect_garbage_as_python_does()  # the executable's rare collections are for short commands; this one lives on

    _enable_plugins(plugins)
    with user_errors():
        serve(active_plugins())  # passed on: the server's handlers may run outside this context


@app.command()
def runs(
    args: Annotated[Optional[list[str]], typer.Argument(
        help="DIR (default runs/) to list its runs, or 'compare RUN RUN...' to compare run directories.",
        show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="compare: also draw the runs' curves "
                                                   "together into this PNG.")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="A table or JSON.")] = OutputFormat.text,
) -> None:
    """List runs (spec, hash, status, epochs, best metric, duration), or compare runs side by side.

    graphspec runs [DIR]  |  graphspec runs compare RUN_A RUN_B ... [-o curves.png]
    (a folder named 'compare' is listed as ./compare). Reads the run files only: no TensorFlow."""
    from graphspec import runs as runlib

    args = list(args or [])
    with user_errors():
        if args and args[0] == "compare":
            chosen = runlib.compare(args[1:])
            if len(chosen) < 1:
                raise typer.BadParameter("give one or more run directories: graphspec runs compare RUN_A RUN_B")
            if output_format is OutputFormat.json:
                typer.echo(json.dumps([r.to_dict() for r in chosen], indent=1, allow_nan=True))
            else:
                typer.echo(runlib.format_compare(chosen))
            if output is not None:
                from graphspec.train.curves import MISSING_NOTE, plot_runs

                drawn = plot_runs([(label, r.history) for label, r in zip(runlib.labels(chosen), chosen)], output)
                typer.echo(f"wrote {output}" if drawn is not None else
                           f"note: {MISSING_NOTE.replace('curves.png', str(output))}")
            return
        if len(args) > 1:
            raise typer.BadParameter(f"give one folder to list (got {len(args)}); to compare runs: "
                                     "graphspec runs compare RUN_A RUN_B")
        if output is not None:
            raise typer.BadParameter("-o draws the curves of 'graphspec runs compare'")
        root = Path(args[0]) if args else Path("runs")
        found = runlib.list_runs(root)
    if output_format is OutputFormat.json:
        typer.echo(json.dumps([r.to_dict() for r in found], indent=1, allow_nan=True))
    elif not found:
        typer.echo(f"no runs in {root}")
    else:
        typer.echo(runlib.format_list(found))


@app.command()
def fmt(
    specs: Annotated[list[Path], typer.Argument(help="Spec files, or folders to search for *.yaml.")],
    check_only: Annotated[bool, typer.Option("--check", help="Change nothing: print a diff of what would change and "
                                             "exit 1 if any spec is not formatted (for CI).")] = False,
) -> None:
    """Rewrite specs in the canonical layout (key order, flow style for nodes, spacing, numbers); comments are
    kept and the spec hash never changes. See docs/fmt.md."""
    import difflib

    from graphspec.files import atomic_write_text
    from graphspec.fmt import format_text, is_formatted

    files = _spec_files(specs)
    if not files:
        _echo_err(f"no spec files found in {', '.join(str(p) for p in specs)} (looked for *.yaml, *.yml)")
        raise typer.Exit(EXIT_USER_ERROR)
    changed, failed = 0, 0
    for file in files:
        try:
            text = file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            _echo_err(f"{file}: error[file-unreadable]: {error}")
            failed += 1
            continue
        if is_formatted(text):  # the fast path: sure that the full formatter would leave it as it is
            continue
        try:
            formatted = format_text(text, str(file))
        except GraphspecError as error:
            report(error)
            failed += 1
            continue
        if formatted == text:
            continue
        changed += 1
        if check_only:
            typer.echo("".join(difflib.unified_diff(text.splitlines(True), formatted.splitlines(True),
                                                    f"{file}", f"{file} (formatted)")), nl=False)
        else:
            atomic_write_text(file, formatted)
            typer.echo(f"formatted {file}")
    if check_only:
        typer.echo(f"{changed} of {len(files)} specs would be reformatted" if changed
                   else f"{len(files)} spec{'s' if len(files) != 1 else ''} already formatted")
    if failed:
        raise typer.Exit(EXIT_USER_ERROR)
    if check_only and changed:
        raise typer.Exit(1)


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="A .keras file, a model.to_json() file, keras.applications.NAME, "
                                              "or package.module:function (with --allow-code).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The spec file to write "
                                                   "(default: print it).")] = None,
    args: Annotated[Optional[list[str]], typer.Option("--arg", help="KEY=VALUE (VALUE is YAML) for "
                                                      "keras.applications or a factory, e.g. input_shape=[96,96,3].")] = None,
    allow_code: Annotated[bool, typer.Option("--allow-code", help="Allow a package.module:function source "
                                             "(runs that code).")] = False,
    weights: Annotated[bool, typer.Option("--weights", help="Also write the model's weights beside the spec "
                                          "(SPEC.weights.h5) and name them in the spec.")] = False,
    fold: Annotated[bool, typer.Option("--fold", help="Write repeated sub-graphs as blocks: and repeat:.")] = False,
    plugins: PluginsOption = None,
) -> None:
    """Convert an existing Keras model into a spec (see docs/import.md)."""
    _enable_plugins(plugins)
    from graphspec.importer.command import run_import

    with user_errors():
        run_import(source, output, args or [], allow_code=allow_code, weights=weights, fold=fold, echo=typer.echo)


class DiffFormat(str, enum.Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command()
def diff(
    sides: Annotated[list[str], typer.Argument(
        help="OLD NEW: files, git revisions (main:specs/x.yaml) or /dev/null; or git's seven diff-driver arguments.",
        show_default=False)],
    output_format: Annotated[DiffFormat, typer.Option("--format", help="text, markdown (a pull-request comment) "
                                                                       "or json.")] = DiffFormat.text,
) -> None:
    """What changed between two versions of a spec: nodes added, removed, renamed, arguments, inputs, blocks and
    params; and its consequences: parameters per node and in total, output shapes and dtypes, the hash."""
    from graphspec.diff import diff as run_diff, render_markdown, render_text

    if len(sides) == 7:  # git's external diff driver: path old-file old-hex old-mode new-file new-hex new-mode
        old, new = sides[1], sides[4]
    elif len(sides) == 2:
        old, new = sides
    else:
        raise typer.BadParameter(f"expected OLD NEW (or git's 7 diff-driver arguments), got {len(sides)}",
                                 param_hint="SIDES")
    with user_errors():
        result = run_diff(old, new)
    if len(sides) == 7:
        result["old"]["spec"] = f"a/{sides[0]}"
        result["new"]["spec"] = f"b/{sides[0]}"
    if output_format is DiffFormat.json:
        typer.echo(json.dumps(result, indent=1, ensure_ascii=False, allow_nan=True))
    elif output_format is DiffFormat.markdown:
        typer.echo(render_markdown(result), nl=False)
    else:
        typer.echo(render_text(result))


@app.command()
def explain(
    code: Annotated[Optional[str], typer.Argument(help="A diagnostic code, e.g. unknown-reference "
                                                       "(without it: every code).")] = None,
) -> None:
    """What a diagnostic code means, an example, and the fix."""
    from graphspec.errors import did_you_mean
    from graphspec.explain import EXPLANATIONS, render as render_explanation

    if code is None:
        width = max(len(c) for c in EXPLANATIONS)
        for name, explanation in sorted(EXPLANATIONS.items()):
            typer.echo(f"{name.ljust(width)}  {explanation.meaning}")
        return
    name = code.strip().strip("[]").removeprefix("error[").removeprefix("warning[")
    explanation = EXPLANATIONS.get(name)
    if explanation is None:
        hint = did_you_mean(name, EXPLANATIONS) or "graphspec explain lists every code"
        _echo_err(f"graphspec: error[unknown-code]: no diagnostic code '{name}'\n  hint: {hint}")
        raise typer.Exit(EXIT_USER_ERROR)
    typer.echo(render_explanation(name, explanation), nl=False)


def main() -> None:
    """Run the command line on ``sys.argv``; it ends, as Click does, in ``SystemExit`` with the exit code.

    For programs that embed graphspec: the interpreter goes on after it, and calling it again in the
    same process runs another command.
    """
    # TensorFlow's C++ log lines after start-up (warnings about retracing, oneDNN notes) are not
    # for graphspec's users; its real errors reach Python as exceptions. Set it to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    app()  # standalone mode: always ends in SystemExit


def console_main() -> None:
    """The ``graphspec`` executable and ``python -m graphspec``: :func:`main` for a process of its own.

    The process ends with the command, so two start-up costs that matter when pre-commit or an editor
    starts one per file can go: Typer builds only the command run, and a front-end command skips the
    interpreter's teardown. Neither is right for a program that calls :func:`main` and goes on.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _register_only_the_command_run(sys.argv[1:])
    try:
        app()
    except SystemExit as done:
        _exit_without_teardown(done.code)
        raise


def _register_only_the_command_run(argv: list[str]) -> None:
    """When the first argument names a command, let Typer build that command alone.

    Typer builds every registered command (their signatures, type hints and parameters) before it runs
    one; for a fresh ``check`` that is ~10 ms spent on fourteen commands it will not run. Everything
    that lists or guesses commands keeps them all: ``graphspec``, ``graphspec --help``, an unknown or
    misspelt command (Typer's "did you mean"), and shell completion (Typer's ``_..._COMPLETE``
    variable).
    """
    if not argv or any(name.endswith("_COMPLETE") for name in os.environ):
        return
    wanted = [info for info in app.registered_commands
              if (info.name or info.callback.__name__.replace("_", "-")) == argv[0]]
    if len(wanted) == 1:
        app.registered_commands = wanted


def _exit_without_teardown(code: object) -> None:
    """End a front-end command (``check``, ``fmt``, ``diff`` ...) without the interpreter's teardown.

    Freeing every object of Pydantic, Typer and the schema one by one at exit is a fifth of a fresh
    ``check`` (pre-commit and editors start one per file); nothing of it is needed once the output is
    flushed and the exit handlers have run. mypy ends the same way (``mypy.util.hard_exit``). Left to
    the normal exit: any command that loaded TensorFlow, JAX or Keras (their own exit handlers and
    C++ destructors expect a real teardown), a process with other threads still running, a code that
    is not a number, and any flush that fails (a closed pipe), whose error the normal exit reports.
    """
    import threading

    if code is None:
        code = 0
    if not isinstance(code, int) or threading.active_count() > 1 or sys.flags.inspect \
            or os.environ.get("PYTHONINSPECT") or any(name in sys.modules for name in ("tensorflow", "jax", "keras")):
        return
    if not _flushed():
        return
    import atexit

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython and PyPy; else keep the normal exit
    if run_exit_handlers is None:
        return
    run_exit_handlers()
    if _flushed():
        os._exit(code)


def _flushed() -> bool:
    """Flush the standard streams (also the original ones, if a library replaced them); a stream that is
    None (its descriptor was closed when Python started) has nothing to flush. False where a flush fails."""
    for stream in dict.fromkeys((sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            return False
    return True


if __name__ == "__main__":
    console_main()
