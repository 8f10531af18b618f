"""``graphspec evaluate``: a run (or a graphspec ``.keras`` file) plus data -> metrics per output.

The data is a file given on the command line (``--data test.npz``; CSV and
TFRecord files reuse the column/feature description of the spec's own source of
that kind), or, by default, the run's validation data exactly as it was held out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path as FsPath
from typing import Any

from graphspec.errors import Diagnostic, TrainError
from graphspec.loader import LoadedSpec, loads
from graphspec.pipeline import CheckedSpec, check_loaded
from graphspec.source import SourceMap
from graphspec.train import data as datalib
from graphspec.train import rundir


@dataclass
class Target:
    """A trained model and the spec it was built from."""

    model_path: FsPath
    checked: CheckedSpec
    run_dir: FsPath | None
    settings: dict | None
    settings_error: TrainError | None = None
    """Why a run's settings.json could not be read (raised when the run's own validation data is needed)."""


def open_target(target: str | os.PathLike, *, best: bool = False) -> Target:
    """A run directory (its ``model.keras`` or ``best.keras``) or a ``.keras`` file saved by graphspec."""
    path = FsPath(target)
    if path.is_dir():
        model_path = path / ("best.keras" if best else "model.keras")
        info = rundir.read_run(path)
        if not model_path.is_file():
            raise TrainError([Diagnostic(code="not-a-run", message=f"'{path}' has no {model_path.name} (did the run "
                                         "finish?)", hint=f"resume it: graphspec train --resume {path}")])
        spec_path = FsPath(info.get("spec_path") or path / "spec.yaml")
        try:
            text = (path / "spec.yaml").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _damaged(path, "spec.yaml", exc) from None
        overrides = [(tuple(p), v) for p, v in info.get("overrides", [])]
        from graphspec.train.settings import apply_overrides

        loaded = loads(text, file=str(path / "spec.yaml"))
        checked = check_loaded(LoadedSpec(apply_overrides(loaded.data, overrides), loaded.source), spec_path)
        try:
            return Target(model_path, checked, path, _run_settings(path))
        except TrainError as error:  # only the default data needs it (its split's seed)
            return Target(model_path, checked, path, None, error)
    if path.suffix != ".keras" or not path.is_file():
        raise TrainError([Diagnostic(code="file-not-found", message=f"'{path}' is neither a run directory nor a "
                                     ".keras file")])
    from graphspec.emit import read_artifact_metadata

    try:
        meta = read_artifact_metadata(path)
    except Exception as exc:  # not a zip, no metadata
        raise TrainError([Diagnostic(code="bad-model", message=f"cannot read '{path}': {exc}")]) from None
    canonical = meta.get("canonical_spec")
    if not canonical:
        raise TrainError([Diagnostic(code="bad-model", message=f"'{path}' was not saved by graphspec (no spec in its "
                                     "metadata)", hint="evaluate a run directory or a model from graphspec build/train")])
    # The model's layers are all inside the archive: its spec's saved-model files are not needed.
    checked = check_loaded(LoadedSpec(canonical, SourceMap(file=str(path))), FsPath.cwd() / "spec.yaml",
                           check_files=False)
    return Target(path, checked, None, None)


def _damaged(run_dir: FsPath, name: str, why: Exception | str) -> TrainError:
    reason = why if isinstance(why, str) else (f"{type(why).__name__}: {why}" if not isinstance(why, OSError)
                                               else why.strerror or str(why))
    return TrainError([Diagnostic(code="damaged-run", file=str(run_dir / name),
                                  message=f"the run directory's {name} cannot be read ({str(reason)[:200]})",
                                  hint=f"restore {name} (e.g. from a backup or another copy of the run), or "
                                  "evaluate the model on data you name: --data FILE")])


def _run_settings(run_dir: FsPath) -> dict:
    """The run's resolved settings (settings.json): its seed reproduces the validation split."""
    path = run_dir / "settings.json"
    if not path.is_file():
        raise _damaged(run_dir, "settings.json", "it is missing, so the run's validation split cannot be reproduced")
    try:
        settings = rundir.read_json(path)
    except (OSError, ValueError) as exc:  # truncated, not UTF-8, not JSON
        raise _damaged(run_dir, "settings.json", exc) from None
    if not isinstance(settings, dict) or not isinstance(settings.get("seed"), int):
        raise _damaged(run_dir, "settings.json", "it is not what graphspec train writes (no seed)")
    return settings


def load_model(target: Target):
    import keras

    try:
        return keras.saving.load_model(target.model_path, safe_mode=True)
    except Exception as exc:  # a damaged file
        raise TrainError([Diagnostic(code="bad-model", message=f"cannot load '{target.model_path}': "
                                     f"{str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}")]) from None


def source_for_file(checked: CheckedSpec, data: str | os.PathLike, mapping: dict[str, str] | None = None):
    """A data source for a file or folder named on the command line, and a CheckedSpec whose folder is its own.

    ``.npz`` -> NPZ; a folder -> images; ``.csv`` / ``.tfrecord`` reuse the spec's own CSV/TFRecord source
    description (columns, features) with the path replaced.
    """
    from graphspec.schema.train import CsvSource, ImageDirSource, NpzSource, TfrecordSource

    path = FsPath(data).resolve()
    if not path.exists():
        raise TrainError([Diagnostic(code="file-not-found", message=f"no file or folder '{data}'")])
    located = replace(checked, path=path.parent / "cli.yaml")
    own = [s for s in _spec_sources(checked)]
    mapping = dict(mapping or {})
    if path.is_dir():
        template = next((s for s in own if isinstance(s, ImageDirSource)), None)
        base = template.model_dump() if template else {}
        base.update(images=path.name, limit=None)
        return ImageDirSource.model_validate(base), located
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return NpzSource(npz=path.name, map=mapping), located
    kind, cls = {".csv": ("csv", CsvSource), ".tfrecord": ("tfrecord", TfrecordSource),
                 ".tfrecords": ("tfrecord", TfrecordSource)}.get(suffix, (None, None))
    if kind is None:
        raise TrainError([Diagnostic(code="bad-data", message=f"'{data}': unknown kind of data file",
                                     hint="give a .npz, .csv, .tfrecord file or a folder of class folders")])
    template = next((s for s in own if isinstance(s, cls)), None)
    if template is None:
        raise TrainError([Diagnostic(code="bad-data", message=f"'{data}': reading a {kind} file needs the spec's own "
                                     f"{kind} source (its {'columns' if kind == 'csv' else 'features'})",
                                     hint="convert it to .npz, or give the spec a train.data of this kind")])
    base = template.model_dump()
    base.update({kind: path.name, "limit": None})
    if mapping:
        base["map"] = {**base.get("map", {}), **mapping}
    return cls.model_validate(base), located


def _spec_sources(checked: CheckedSpec) -> list:
    train = checked.spec.train
    if train is None:
        return []
    result = [train.data] if train.data is not None else []
    if train.validation is not None and train.validation.data is not None:
        result.append(train.validation.data)
    return result


def default_examples(target: Target, io_, *, need_targets: bool = True):
    """The run's validation data (reproducing its split), else its training data."""
    checked = target.checked
    train = checked.spec.train
    if train is None or train.data is None:
        raise TrainError([Diagnostic(code="no-data", message="no data given and the spec has no train.data",
                                     hint="give --data FILE")])
    if target.settings_error is not None:
        raise target.settings_error
    if train.validation is not None and train.validation.data is not None:
        return datalib.open_source(train.validation.data, checked, io_, ("train", "validation", "data"),
                                   need_targets=need_targets), "validation data"
    examples = datalib.open_source(train.data, checked, io_, ("train", "data"), need_targets=need_targets)
    if train.validation is not None and train.validation.split is not None and target.settings is not None:
        _, held = datalib.split(examples, train.validation.split, int(target.settings["seed"]),
                                train.validation.shuffle_before_split)
        return held, "validation split"
    return examples, "training data"


def per_output(results: dict[str, float], outputs: list[str]) -> dict[str, dict[str, float]]:
    """``{"digit_accuracy": .., "loss": ..}`` -> ``{"digit": {"accuracy": ..}, "(all)": {"loss": ..}}``."""
    table: dict[str, dict[str, float]] = {}
    for key, value in results.items():
        owner = next((name for name in sorted(outputs, key=len, reverse=True) if key.startswith(name + "_")), None)
        if owner is None:
            if len(outputs) == 1:
                owner, metric = outputs[0], key
            else:
                owner, metric = "(all)", key
        else:
            metric = key[len(owner) + 1:]
        table.setdefault(owner, {})[metric] = float(value)
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    metrics: list[str] = []
    for row in table.values():
        for key in row:
            if key not in metrics:
                metrics.append(key)
    header = ["output", *metrics]
    rows = [header] + [[name, *(f"{row[m]:.4f}" if m in row else "" for m in metrics)] for name, row in table.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def evaluate(target: str | os.PathLike, data: str | os.PathLike | Any = None, *, mapping: dict | None = None,
             batch_size: int | None = None, best: bool = False, output: str | os.PathLike | None = None) -> dict:
    """Metrics of a trained model on data: ``{"metrics": {...}, "per_output": {...}, ...}``; written as JSON to
    ``output`` (default: ``evaluation.json`` in the run directory when evaluating a run)."""
    opened = open_target(target, best=best)
    model = load_model(opened)
    io_ = datalib.model_io(opened.checked, model)
    if not io_.targets:
        raise TrainError([Diagnostic(code="no-loss", message="the model has no loss, so nothing to evaluate against")])
    if data is None:
        examples, what = default_examples(opened, io_)
    elif isinstance(data, (str, os.PathLike)):
        source, located = source_for_file(opened.checked, data, mapping)
        examples = datalib.open_source(source, located, io_, (), need_targets=True)
        what = str(data)
    else:
        examples = datalib.open_python(data, io_)
        what = "data"
    size = batch_size or (opened.settings or {}).get("batch_size") or 32
    dataset = datalib.eval_dataset(examples, io_, batch_size=size)
    with datalib.data_errors("evaluation stopped on bad data"):
        results = model.evaluate(dataset, verbose=0, return_dict=True)
    results = {k: float(v) for k, v in results.items()}
    report = {"model": str(opened.model_path), "data": what, "examples": examples.size, "metrics": results,
              "per_output": per_output(results, list(io_.outputs))}
    target_file = FsPath(output) if output is not None else (opened.run_dir / "evaluation.json"
                                                             if opened.run_dir is not None else None)
    if target_file is not None:
        rundir.atomic_write_json(target_file, report)
        report["written"] = str(target_file)
    return report


__all__ = ["evaluate", "open_target", "source_for_file", "per_output", "format_table"]
