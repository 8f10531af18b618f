"""curves.png: matplotlib, an epoch axis, train and validation per quantity, the best epoch, the learning rate;
without matplotlib, no PNG and a note (in the output and in run.json)."""

from __future__ import annotations

import json
import sys

import pytest

from graphspec.train import curves, rundir

HISTORY = [{"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + 0.05 * e, "val_loss": 1.2 / e, "val_accuracy": 0.45 + 0.05 * e,
            "learning_rate": 0.01 if e < 4 else 0.001} for e in range(1, 7)]


def test_one_panel_per_quantity_with_epochs_train_validation_and_best():
    figure = curves.curves_figure(HISTORY, title="tiny", best_epoch=5, monitor="val_accuracy")
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "learning rate"]
    assert all(ax.get_xlabel() == "epoch" for ax in axes)
    loss = axes[0]
    labels = [line.get_label() for line in loss.get_lines()]
    assert labels[:2] == ["train", "validation"] and "best epoch 5 (val_accuracy)" in labels
    train_line = loss.get_lines()[0]
    assert list(train_line.get_xdata()) == [1, 2, 3, 4, 5, 6]  # epochs, 1-based
    assert list(train_line.get_ydata()) == pytest.approx([1.0 / e for e in range(1, 7)])
    best = next(line for line in loss.get_lines() if line.get_label().startswith("best"))
    assert list(best.get_xdata()) == [5, 5]
    assert axes[2].get_yscale() == "log"  # the learning rate fell tenfold


def test_without_a_given_best_each_panel_marks_its_own():
    figure = curves.curves_figure(HISTORY)
    loss, accuracy = figure.axes[0], figure.axes[1]
    mark = lambda ax: next(l for l in ax.get_lines() if l.get_label().startswith("best")).get_xdata()[0]  # noqa: E731
    assert mark(loss) == 6 and mark(accuracy) == 6  # lowest validation loss, highest validation accuracy


def test_more_than_six_quantities_are_all_drawn(tmp_path):
    wide = [dict({f"out{i}_loss": 1.0 / e for i in range(8)}, epoch=e) for e in range(1, 4)]
    figure = curves.curves_figure(wide)
    assert len([ax for ax in figure.axes if ax.get_visible()]) == 8
    path = rundir.plot_curves(wide, tmp_path / "c.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_without_matplotlib_nothing_is_drawn(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert curves.have_matplotlib() is False
    assert rundir.plot_curves(HISTORY, tmp_path / "curves.png") is None
    assert not (tmp_path / "curves.png").exists()


def test_a_run_without_matplotlib_notes_it(project, monkeypatch):
    from graphspec.train.loop import train

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    said = []
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="nomatplotlib",
                   overrides=[(("train", "epochs"), 1)], echo=said.append)
    assert not (result.run_dir / "curves.png").exists()
    assert curves.MISSING_NOTE in json.loads((result.run_dir / "run.json").read_text())["curves"]
    assert any(curves.MISSING_NOTE in line for line in said)
