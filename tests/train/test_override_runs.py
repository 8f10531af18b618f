"""Overrides of the model (not only train.*) in real runs: recorded, re-applied by --resume, and a
changed one refused like an edited spec."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.errors import TrainError
from graphspec.overrides import parse_set
from graphspec.train.loop import train

runner = CliRunner()


def test_cli_records_a_model_override_and_the_run_trains_the_overridden_model(project):
    result = runner.invoke(app, ["train", str(project / "tiny.yaml"), "--runs", str(project / "runs"), "--name", "o",
                                 "--epochs", "1", "--set", "nodes.h.units=5",
                                 "--set", "compile.optimizer.learning_rate=0.05"])
    assert result.exit_code == 0, result.output
    run = project / "runs" / "tiny" / "o"
    info = json.loads((run / "run.json").read_text())
    assert [["nodes", "h", "units"], 5] in info["overrides"]
    assert [["compile", "optimizer", "learning_rate"], 0.05] in info["overrides"]
    canonical = json.loads((run / "spec.json").read_text())
    assert canonical["nodes"]["h"]["units"] == 5 and canonical["compile"]["optimizer"]["learning_rate"] == 0.05
    assert "units: 8" in (run / "spec.yaml").read_text()  # the file as written
    import keras

    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("h").units == 5


def _interrupted(project, overrides):
    result = train(project / "tiny.yaml", runs_root=project / "runs", run_name="r", overrides=overrides)
    info = json.loads((result.run_dir / "run.json").read_text())
    info["status"] = "interrupted"
    (result.run_dir / "run.json").write_text(json.dumps(info))
    return result.run_dir


def test_resume_reapplies_recorded_model_overrides_and_refuses_changed_ones(project):
    run = _interrupted(project, [parse_set("nodes.h.units=5"), parse_set("train.epochs=1")])
    with pytest.raises(TrainError) as info:
        train(resume=run, overrides=[parse_set("nodes.h.units=6")])
    assert info.value.diagnostics[0].code == "resume-changed" and "spec changed" in str(info.value)
    resumed = train(resume=run)  # no override given: the recorded ones are applied again
    assert resumed.model.get_layer("h").units == 5 and len(resumed.history) == 1
