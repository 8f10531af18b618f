"""`graphspec runs [DIR]` and `graphspec runs compare A B ... [-o PNG]`: reading run directories only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.runs import compare, format_compare, list_runs, read_run_info

runner = CliRunner()


def history(epochs: int, start_loss: float, acc_step: float) -> list[dict]:
    return [{"epoch": e, "loss": start_loss / e, "accuracy": min(1.0, 0.5 + acc_step * e),
             "val_loss": start_loss / e + 0.1, "val_accuracy": min(1.0, 0.45 + acc_step * e),
             "learning_rate": 0.001} for e in range(1, epochs + 1)]


def make_run(root: Path, spec: str, name: str, *, status="completed", epochs=3, start="2026-01-01T10:00:00+0000",
             end="2026-01-01T10:01:05+0000", start_loss=1.0, acc_step=0.1, overrides=(), graph_hash=None) -> Path:
    run = root / spec / name
    run.mkdir(parents=True)
    rows = history(epochs, start_loss, acc_step)
    info = {"status": status, "spec": spec, "spec_hash": "sha256:" + ("ab" * 32), "started": start,
            "overrides": [[list(p), v] for p, v in overrides]}
    if graph_hash is not None:
        info["graph_hash"] = graph_hash
    if status == "completed":
        info.update(finished=end, epochs=epochs)
        best = max(rows, key=lambda r: r["val_accuracy"])
        (run / "metrics.json").write_text(json.dumps({
            "epochs": epochs, "final": {k: v for k, v in rows[-1].items() if k != "epoch"},
            "best": {"monitor": "val_accuracy", "value": best["val_accuracy"], "epoch": best["epoch"]}}))
    (run / "run.json").write_text(json.dumps(info))
    (run / "history.json").write_text(json.dumps(rows))
    return run


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "digits", "base", start_loss=1.0, acc_step=0.1)
    make_run(root, "digits", "wide", start="2026-01-01T11:00:00+0000", end="2026-01-01T11:02:00+0000",
             start_loss=0.8, acc_step=0.15, overrides=[(("nodes", "hidden", "units"), 256)])
    make_run(root, "digits", "stopped", status="interrupted", epochs=2, start="2026-01-01T12:00:00+0000")
    damaged = root / "digits" / "damaged"
    damaged.mkdir()
    (damaged / "run.json").write_text("{not json")
    (root / "digits" / "not-a-run").mkdir()  # no run.json: not listed
    return root


def test_list_reads_every_run_oldest_first(runs_root):
    found = list_runs(runs_root)
    assert [r.name for r in found] == ["digits/damaged", "digits/base", "digits/wide", "digits/stopped"]
    damaged, base, wide, stopped = found
    assert damaged.status == "damaged" and "run.json cannot be read" in damaged.problem
    assert base.duration_s == 65 and base.epochs == 3 and base.best["epoch"] == 3
    assert wide.overrides == ["nodes.hidden.units=256"]
    assert stopped.epochs == 2 and stopped.final["val_loss"] == pytest.approx(0.6)  # its last completed epoch


def test_runs_command_prints_a_table(runs_root):
    result = runner.invoke(app, ["runs", str(runs_root)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "spec", "hash", "status", "epochs", "best", "duration", "overrides"]
    base = next(line for line in lines if line.startswith("digits/base"))
    assert "completed" in base and "abababababab" in base and "val_accuracy=0.7500 @3" in base and "1m05s" in base
    wide = next(line for line in lines if line.startswith("digits/wide"))
    assert "nodes.hidden.units=256" in wide and "2m00s" in wide
    assert any(line.startswith("digits/damaged") and "damaged" in line for line in lines)
    as_json = json.loads(runner.invoke(app, ["runs", str(runs_root), "--format", "json"]).stdout)
    assert [r["name"] for r in as_json][1] == "digits/base"


def test_runs_on_a_missing_folder_is_a_clean_error(tmp_path):
    result = runner.invoke(app, ["runs", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no folder" in result.stderr


def test_compare_side_by_side_marks_the_best(runs_root):
    chosen = compare([runs_root / "digits" / "base", runs_root / "digits" / "wide"])
    text = format_compare(chosen)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:] if line.strip()}
    assert rows["val_loss"] == [f"{1 / 3 + 0.1:.4f}", f"{0.8 / 3 + 0.1:.4f}", "*"]  # lower loss is better
    assert rows["val_accuracy"] == ["0.7500", "0.9000", "*"]
    assert rows["overrides"] == ["-", "nodes.hidden.units=256"]
    assert rows["epochs"] == ["3", "3"]
    assert rows["graph"] == ["?", "?"]  # runs recorded before run.json had the graph hash


def test_compare_shows_the_graph_hash_of_each_run(tmp_path):
    first = make_run(tmp_path, "digits", "a", graph_hash="sha256:" + "12" * 32)
    second = make_run(tmp_path, "digits_blocks", "b", graph_hash="sha256:" + "12" * 32)
    rows = {line.split()[0]: line.split()[1:] for line in format_compare(compare([first, second])).splitlines()[2:]
            if line.strip()}
    assert rows["graph"] == ["12" * 6, "12" * 6]  # two specs, one model
    assert read_run_info(first).to_dict()["graph_hash"] == "sha256:" + "12" * 32


def test_compare_command_draws_the_curves_together(runs_root, tmp_path):
    out = tmp_path / "compare.png"
    result = runner.invoke(app, ["runs", "compare", str(runs_root / "digits" / "base"),
                                 str(runs_root / "digits" / "wide"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and out.stat().st_size > 10_000


def test_compare_refuses_a_folder_that_is_not_a_run(runs_root):
    result = runner.invoke(app, ["runs", "compare", str(runs_root / "digits" / "base"),
                                 str(runs_root / "digits" / "not-a-run")])
    assert result.exit_code == 2 and "error[not-a-run]" in result.stderr


def test_runs_does_not_import_tensorflow(runs_root):
    probe = ("import sys\nsys.argv = ['graphspec', 'runs', 'compare', sys.argv[1], sys.argv[2]]\n"
             "from graphspec.cli import app\n"
             "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\n"
             "print('HEAVY=' + ','.join(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})))\n")
    result = subprocess.run([sys.executable, "-c", probe, str(runs_root / "digits" / "base"),
                             str(runs_root / "digits" / "wide")], capture_output=True, text=True, timeout=60)
    assert "HEAVY=\n" in result.stdout, result.stdout + result.stderr
    assert "val_accuracy" in result.stdout
