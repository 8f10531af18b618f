"""Honest progress and results: a signal stops at the end of the batch without validating the partial
epoch and says what was saved; a second SIGINT still leaves a resumable run; the closing metrics are
those of the epoch whose weights the model holds; one plain line per epoch when stdout is not a
terminal; ``--resume RUN --epochs N`` extends a finished run exactly as a longer run would have gone."""

from __future__ import annotations

import json
import os
import signal

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.errors import TrainError
from graphspec.train.loop import TrainInterrupted, read_state, train
from trainhelpers import TINY_SPEC, weights_of

DETERMINISTIC = [(("train", "deterministic"), True)]


class SignalAt(keras.callbacks.Callback):
    """Sends SIGINT to this process (``times`` times) after batch ``batch`` of epoch ``epoch`` (0-based);
    counts the validations that ran."""

    def __init__(self, epoch: int, batch: int, times: int = 1):
        super().__init__()
        self.at = (epoch, batch)
        self.times = times
        self.epoch = -1
        self.validations = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_test_begin(self, logs=None):
        self.validations += 1

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


def test_sigint_stops_at_the_end_of_the_batch_without_validating_the_partial_epoch(project):
    probe = SignalAt(epoch=1, batch=2)
    with pytest.raises(TrainInterrupted) as info:
        train(project / "tiny.yaml", runs_root=project / "runs", run_name="r", overrides=DETERMINISTIC,
              callbacks=[probe])
    run = project / "runs" / "tiny" / "r"
    (diagnostic,) = info.value.diagnostics
    assert info.value.exit_code == 130
    assert diagnostic.message == (f"SIGINT in epoch 2 of 3 (after batch 3; that partial epoch is dropped): stopped; "
                                  f"epoch 1 is saved in {run / 'checkpoint.npz'}")
    assert diagnostic.hint == f"continue with: graphspec train --resume {run}"
    assert probe.validations == 1, "epoch 2 was not validated"
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1]
    assert read_state(run / "checkpoint.npz")[0]["epoch"] == 1
    info_json = json.loads((run / "run.json").read_text())
    assert info_json["status"] == "interrupted" and info_json["interrupted_at_epoch"] == 2

    resumed = train(resume=run)
    whole = train(project / "tiny.yaml", write_run_dir=False, overrides=DETERMINISTIC)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    for a, b in zip(weights_of(resumed.model), weights_of(whole.model)):
        np.testing.assert_array_equal(a, b)


def test_a_second_sigint_stops_at_once_and_the_run_stays_resumable(project):
    probe = SignalAt(epoch=1, batch=0, times=2)
    with pytest.raises(TrainInterrupted) as info:
        train(project / "tiny.yaml", runs_root=project / "runs", run_name="r", overrides=DETERMINISTIC,
              callbacks=[probe])
    run = project / "runs" / "tiny" / "r"
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.message == "SIGINT again: stopped at once; the checkpoint of epoch 1 is kept"
    assert diagnostic.hint == f"continue with: graphspec train --resume {run}"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    resumed = train(resume=run)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


class EpochWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(weights_of(self.model))


EARLY = TINY_SPEC.replace("epochs: 3", "epochs: 6") + """\
  callbacks:
    early_stopping: {monitor: val_loss, patience: 2, min_delta: 5, restore_best_weights: true}
"""
"""No epoch improves val_loss by 5: early stopping stops after epoch 3 and restores epoch 1's weights."""


def test_the_final_metrics_are_those_of_the_epoch_the_model_holds(project):
    (project / "early.yaml").write_text(EARLY)
    seen = EpochWeights()
    result = train(project / "early.yaml", runs_root=project / "runs", run_name="e", callbacks=[seen])
    assert len(result.history) == 3 and result.final_epoch == 1
    first = {k: v for k, v in result.history[0].items() if k != "epoch"}
    assert result.metrics == first
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["final_epoch"] == 1 and metrics["final"] == first and metrics["epochs"] == 3
    assert json.loads((result.run_dir / "run.json").read_text())["final_epoch"] == 1
    # the model does hold epoch 1's weights (and the last epoch's differ)
    assert len(seen.weights) == 3
    for a, b in zip(seen.weights[0], weights_of(result.model)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(seen.weights[2][0], weights_of(result.model)[0])
    last = train(project / "tiny.yaml", write_run_dir=False)
    assert last.final_epoch == 3 and last.metrics == {k: v for k, v in last.history[-1].items() if k != "epoch"}


def test_cli_closing_line_names_the_epoch_held(project):
    (project / "early.yaml").write_text(EARLY)
    result = CliRunner().invoke(app, ["train", str(project / "early.yaml"), "--runs", str(project / "runs"),
                                      "-v", "0"])
    assert result.exit_code == 0, result.output
    assert "trained 3 epochs; the model holds epoch 1 (early stopping restored its best weights): accuracy " \
        in result.output
    assert " val_loss " in result.output


def test_without_a_terminal_progress_is_one_plain_line_per_epoch(project, capsys):
    train(project / "tiny.yaml", write_run_dir=False, verbose=1)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split(" - ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert all(" - loss " in line and " - val_accuracy " in line for line in lines)
    assert "\r" not in out and "\x1b" not in out and "━" not in out
    train(project / "tiny.yaml", write_run_dir=False, verbose=0)
    assert capsys.readouterr().out == ""


def test_resume_with_epochs_extends_a_completed_run_as_a_longer_run_would_have_gone(project):
    short = train(project / "tiny.yaml", runs_root=project / "runs", run_name="x",
                  overrides=DETERMINISTIC + [(("train", "epochs"), 2)])
    run = short.run_dir
    with pytest.raises(TrainError) as refused:
        train(resume=run)
    assert "already completed (2 epochs)" in refused.value.diagnostics[0].message
    assert f"graphspec train --resume {run} --epochs N" in refused.value.diagnostics[0].hint
    with pytest.raises(TrainError) as refused:
        train(resume=run, overrides=[(("train", "epochs"), 2)])
    assert refused.value.diagnostics[0].message == (f"--epochs 2 does not extend the run in '{run}': it completed "
                                                    "2 epochs")

    extended = train(resume=run, overrides=[(("train", "epochs"), 4)])
    whole = train(project / "tiny.yaml", write_run_dir=False, overrides=DETERMINISTIC + [(("train", "epochs"), 4)])
    assert extended.epochs_run == [2, 3]
    assert [row["epoch"] for row in extended.history] == [1, 2, 3, 4]
    for a, b in zip(weights_of(extended.model), weights_of(whole.model)):
        np.testing.assert_array_equal(a, b)
    assert [r["loss"] for r in extended.history] == [r["loss"] for r in whole.history]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs"] == 4 and info["extended_to"] == 4
    assert json.loads((run / "settings.json").read_text())["epochs"] == 4
    # the extension is recorded: a later extension replays it
    again = train(resume=run, overrides=[(("train", "epochs"), 5)])
    assert [row["epoch"] for row in again.history] == [1, 2, 3, 4, 5]


def test_resume_with_epochs_of_an_interrupted_run_must_extend_it(project):
    short = train(project / "tiny.yaml", runs_root=project / "runs", run_name="i",
                  overrides=[(("train", "epochs"), 2)])
    info = json.loads((short.run_dir / "run.json").read_text())
    (short.run_dir / "run.json").write_text(json.dumps(dict(info, status="interrupted")))
    with pytest.raises(TrainError) as refused:
        train(resume=short.run_dir, overrides=[(("train", "epochs"), 1)])
    assert refused.value.diagnostics[0].message == (f"--epochs 1 does not extend the run in '{short.run_dir}': "
                                                    "2 epochs are trained")
    with pytest.raises(TrainError) as refused:  # other settings still may not change
        train(resume=short.run_dir, overrides=[(("train", "epochs"), 3), (("train", "batch_size"), 8)])
    assert refused.value.diagnostics[0].code == "resume-changed"


def test_settings_are_typed_and_settings_json_is_their_json_form(project):
    from graphspec.pipeline import check_file
    from graphspec.schema.train import CallbacksSpec, ValidationSpec
    from graphspec.train.settings import TrainSettings, train_settings

    checked = check_file(project / "tiny.yaml")
    settings = train_settings(checked, verbose=2)
    assert isinstance(settings, TrainSettings)
    assert settings.seed == 1 and settings.epochs == 3 and settings.verbose == 2
    assert isinstance(settings.validation, ValidationSpec) and settings.validation.split == 0.25
    assert isinstance(settings.callbacks, CallbacksSpec) and settings.callbacks.best_model.monitor is None
    (project / "unseeded.yaml").write_text(TINY_SPEC.replace("  seed: 1\n", ""))
    unseeded = check_file(project / "unseeded.yaml")
    assert train_settings(unseeded, seed=77).seed == 77  # a resumed run's recorded seed
    assert isinstance(train_settings(unseeded).seed, int)  # else one is drawn
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="t")
    assert json.loads((result.run_dir / "settings.json").read_text()) == result.settings == \
        train_settings(checked).as_json()


def test_cli_resume_with_epochs_extends_and_refuses_a_total_that_does_not(project):
    runner = CliRunner()
    runs = project / "runs"
    first = runner.invoke(app, ["train", str(project / "tiny.yaml"), "--runs", str(runs), "--name", "c",
                                "--epochs", "1"])
    assert first.exit_code == 0, first.output
    run = runs / "tiny" / "c"
    again = runner.invoke(app, ["train", "--resume", str(run)])
    assert again.exit_code == 2 and "already completed (1 epoch)" in again.output
    assert f"graphspec train --resume {run} --epochs N" in again.output
    same = runner.invoke(app, ["train", "--resume", str(run), "--epochs", "1"])
    assert same.exit_code == 2 and "--epochs 1 does not extend the run" in same.output
    longer = runner.invoke(app, ["train", "--resume", str(run), "--epochs", "2"])
    assert longer.exit_code == 0, longer.output
    assert f"extending {run}: epoch 2" in longer.output and "trained 2 epochs; the model holds epoch 2" in longer.output
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1, 2]
