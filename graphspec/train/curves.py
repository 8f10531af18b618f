"""Training curves as a PNG, drawn with matplotlib (the optional ``plots`` extra).

One panel per quantity (the loss, each metric), training and validation in it,
epochs on the x axis, the best epoch marked; the learning rate gets a panel of
its own (log scale) when the history records it. :func:`plot_runs` overlays
several runs, one colour per run, for ``graphspec runs compare``.

Without matplotlib nothing is drawn: :func:`plot_curves` returns None and the
caller says so (``pip install "graphspec[plots]"``). Pure Python apart from
matplotlib; nothing here imports TensorFlow, so ``graphspec runs`` stays fast.
"""

from __future__ import annotations

import math
import os
from pathlib import Path as FsPath
from typing import Any, Sequence

MISSING_NOTE = 'curves.png not drawn: matplotlib is not installed (pip install "graphspec[plots]")'
"""What a run says instead of a picture when matplotlib is missing."""

_SKIP = ("epoch",)
_LR_KEYS = ("learning_rate", "lr")


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def quantities(history: Sequence[dict[str, Any]]) -> list[str]:
    """The quantities of a history (``loss``, ``accuracy``, ``digit_loss``...), in first-seen order,
    without their ``val_`` twins, the epoch and the learning rate."""
    names: list[str] = []
    for row in history:
        for key in row:
            base = key[4:] if key.startswith("val_") else key
            if key in _SKIP or key in _LR_KEYS or base in names:
                continue
            names.append(base)
    return sorted(names, key=lambda n: n != "loss")  # the loss first, the rest in history order


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(history):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            epoch = row.get("epoch")
            xs.append(int(epoch) if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) else i + 1)
            ys.append(float(value))
    return xs, ys


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only, never a window (and no display needed)
    import matplotlib.pyplot as plt

    return plt


def _grid(count: int):
    columns = 1 if count == 1 else 2 if count <= 4 else 3
    rows = math.ceil(count / columns)
    return rows, columns


def _lower_is_better(name: str) -> bool:
    return "loss" in name or "error" in name


def plot_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str | None = None,
                best_epoch: int | None = None, monitor: str | None = None) -> FsPath | None:
    """Draw ``history`` (one dict per epoch, as ``history.json``) to a PNG at ``path``.

    ``best_epoch`` (1-based, e.g. from ``metrics.json``) is marked with a vertical line in every
    panel; without it, each panel marks its own best validation (else training) value.
    Returns the path, or None when matplotlib is not installed (nothing written)."""
    if not have_matplotlib():
        return None
    return _save(curves_figure(history, title=title, best_epoch=best_epoch, monitor=monitor), _pyplot(), path)


def curves_figure(history: Sequence[dict[str, Any]], *, title: str | None = None, best_epoch: int | None = None,
                  monitor: str | None = None):
    """The matplotlib figure :func:`plot_curves` saves (needs matplotlib)."""
    plt = _pyplot()
    names = quantities(history) or ["loss"]
    lr_key = next((k for k in _LR_KEYS if any(k in row for row in history)), None)
    panels = names + (["learning rate"] if lr_key else [])
    rows, columns = _grid(len(panels))
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows), squeeze=False,
                                layout="constrained")
    for index, name in enumerate(panels):
        ax = axes[index // columns][index % columns]
        if name == "learning rate":
            xs, ys = _series(history, lr_key)
            ax.plot(xs, ys, marker=".", color="tab:gray", label="learning rate")
            if ys and min(ys) > 0 and max(ys) / min(ys) > 4:
                ax.set_yscale("log")
            ax.set_title("learning rate")
        else:
            train_x, train_y = _series(history, name)
            val_x, val_y = _series(history, "val_" + name)
            if train_y:
                ax.plot(train_x, train_y, marker=".", color="tab:blue", label="train")
            if val_y:
                ax.plot(val_x, val_y, marker=".", linestyle="--", color="tab:orange", label="validation")
            ax.set_title(name)
            marked = best_epoch
            if marked is None and (val_y or train_y):
                xs, ys = (val_x, val_y) if val_y else (train_x, train_y)
                pick = min if _lower_is_better(name) else max
                marked = xs[ys.index(pick(ys))]
            if marked is not None:
                ax.axvline(marked, color="tab:green", linestyle=":", linewidth=1.2,
                           label=f"best epoch {marked}" + (f" ({monitor})" if best_epoch is not None and monitor else ""))
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="small")
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    if title:
        figure.suptitle(title)
    return figure


def plot_runs(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], path: str | os.PathLike) -> FsPath | None:
    """Overlay several runs' histories: one panel per quantity, one colour per run, training solid
    and validation dashed. ``runs`` is ``[(label, history), ...]``; None without matplotlib."""
    if not have_matplotlib():
        return None
    return _save(runs_figure(runs), _pyplot(), path)


def runs_figure(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]]):
    """The matplotlib figure :func:`plot_runs` saves (needs matplotlib)."""
    plt = _pyplot()
    names: list[str] = []
    for _, history in runs:
        for name in quantities(history):
            if name not in names:
                names.append(name)
    names = names or ["loss"]
    rows, columns = _grid(len(names))
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows), squeeze=False,
                                layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    for index, name in enumerate(names):
        ax = axes[index // columns][index % columns]
        for number, (label, history) in enumerate(runs):
            colour = colours[number % len(colours)]
            xs, ys = _series(history, name)
            if ys:
                ax.plot(xs, ys, color=colour, label=f"{label} train")
            xs, ys = _series(history, "val_" + name)
            if ys:
                ax.plot(xs, ys, color=colour, linestyle="--", label=f"{label} validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="x-small")
    for index in range(len(names), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    return figure


def _save(figure, plt, path: str | os.PathLike) -> FsPath:
    import io

    from graphspec.files import atomic_write_bytes

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
