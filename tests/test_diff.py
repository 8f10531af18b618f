"""graphspec diff: the semantic diff of two specs (files, git revisions, /dev/null) and its consequences."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.diff import diff

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

OLD = """\
graphspec: 1
name: m
inputs:
  x: {shape: [8]}
  y: {shape: [4]}
nodes:
  d1: {type: Dense, units: 4, input: x}
  d2: {type: Dense, units: 2, input: y}
  drop: {type: Dropout, rate: 0.5, input: d1}
  cat: {type: Concatenate, input: [drop, d2]}
  out: {type: Dense, units: 1}
outputs: [out]
compile: {optimizer: {type: Adam, learning_rate: 0.001}, loss: mse}
"""

NEW = """\
graphspec: 1
name: m
inputs:
  x: {shape: [8]}
  y: {shape: [4]}
nodes:
  first: {type: Dense, units: 4, input: x}
  d2: {type: Dense, units: 3, input: y}
  extra: {type: Dense, units: 5, input: first}
  cat: {type: Concatenate, input: [extra, d2]}
  out: {type: Dense, units: 1}
outputs: [out]
compile: {optimizer: {type: Adam, learning_rate: 0.0005}, loss: mse}
"""


@pytest.fixture
def pair(tmp_path):
    (tmp_path / "old.yaml").write_text(OLD)
    (tmp_path / "new.yaml").write_text(NEW)
    return str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")


def test_nodes_added_removed_renamed_changed_rewired(pair):
    result = diff(*pair)
    nodes = result["nodes"]
    assert nodes["renamed"] == [{"old": "d1", "new": "first"}]
    assert nodes["added"] == [{"name": "extra", "kind": "Dense"}]
    assert nodes["removed"] == [{"name": "drop", "kind": "Dropout"}]
    assert nodes["changed"] == {"d2": [{"path": "units", "old": 2, "new": 3}]}
    assert result["rewired"] == {"cat": [["drop", "d2"], ["extra", "d2"]]}  # d1 -> first is a rename, not a rewire
    assert result["changes"] == [{"path": "compile.optimizer.learning_rate", "old": 0.001, "new": 0.0005}]


def test_consequences_parameters_shapes_hash(pair):
    result = diff(*pair)
    # d2: 4*2+2=10 -> 4*3+3=15; extra: 4*5+5=25; out: (4+2)+1=7 -> (5+3)+1=9
    assert result["params"]["nodes"] == {"d2": [10, 15], "out": [7, 9], "extra": [0, 25]}
    assert result["params"]["total"] == [53, 85]
    assert result["shapes"] == {"d2": ["(None, 2) float32", "(None, 3) float32"],
                                "cat": ["(None, 6) float32", "(None, 8) float32"]}
    assert result["old"]["hash"] != result["new"]["hash"]
    assert result["same_hash"] is False


def test_a_reformatted_spec_has_no_changes(tmp_path):
    from graphspec.fmt import format_text

    (tmp_path / "a.yaml").write_text(OLD)
    (tmp_path / "b.yaml").write_text(format_text(OLD.replace("0.001", "1e-3")))
    result = diff(str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert result["same_hash"] is True
    assert result["nodes"] == {"added": [], "removed": [], "renamed": [], "changed": {}}
    assert result["changes"] == [] and result["params"]["nodes"] == {} and result["shapes"] == {}
    text = runner.invoke(app, ["diff", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]).stdout
    assert "hash: unchanged" in text and "params: 53 (unchanged)" in text


def test_text_markdown_and_json(pair):
    text = runner.invoke(app, ["diff", *pair])
    assert text.exit_code == 0
    for line in ["  ~ d1 -> first  (renamed)", "  + extra  (Dense)", "  - drop  (Dropout)", "  ~ d2.units: 2 -> 3",
                 '  ~ cat input: ["drop", "d2"] -> ["extra", "d2"]',
                 "  ~ compile.optimizer.learning_rate: 0.001 -> 0.0005", "params: 53 -> 85 (+32)"]:
        assert line in text.stdout.splitlines(), line
    markdown = runner.invoke(app, ["diff", "--format", "markdown", *pair]).stdout
    assert "**Parameters:** 53 → 85 (+32)" in markdown
    assert "| `d2` | `units` | `2` → `3` |" in markdown
    assert "| `extra` | 0 | 25 (+25) |" in markdown
    data = json.loads(runner.invoke(app, ["diff", "--format", "json", *pair]).stdout)
    assert data["params"]["total"] == [53, 85]


def test_a_failed_expect_is_reported_and_the_models_still_compared(tmp_path):
    (tmp_path / "a.yaml").write_text(OLD + "expect: {params: 53}\n")
    (tmp_path / "b.yaml").write_text(NEW + "expect: {params: 53}\n")
    result = diff(str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"))
    assert [e["code"] for e in result["new"]["errors"]] == ["expect-failed"]
    assert result["params"]["total"] == [53, 85]
    assert result["new"]["hash"] is None  # not the spec's hash: not shown


def test_blocks_and_params_changes_are_listed(tmp_path):
    source = (ROOT / "specs" / "resnet50.yaml").read_text()
    changed = source.replace("classes: {type: int, default: 1000", "classes: {type: int, default: 10")
    (tmp_path / "resnet50.yaml").write_text(source)
    (tmp_path / "changed.yaml").write_text(changed)
    result = diff(str(tmp_path / "resnet50.yaml"), str(tmp_path / "changed.yaml"))
    assert {"path": "params.classes.default", "old": 1000, "new": 10} in result["changes"]
    assert result["params"]["nodes"] == {"predictions": [2049000, 20490]}
    assert result["outputs"] == {"predictions": ["(None, 1000) float32", "(None, 10) float32"]}


def test_new_and_deleted_specs(pair):
    added = runner.invoke(app, ["diff", "/dev/null", pair[1]])
    assert added.exit_code == 0 and "  new spec" in added.stdout and "  + extra  (Dense)" in added.stdout
    deleted = runner.invoke(app, ["diff", pair[0], "/dev/null"])
    assert deleted.exit_code == 0 and "  spec deleted" in deleted.stdout


def test_a_missing_side_is_a_located_error():
    result = runner.invoke(app, ["diff", "no_such.yaml", "nor_this.yaml"])
    assert result.exit_code == 2
    assert "error[file-not-found]" in result.output


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_revisions_and_the_diff_driver(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "m.yaml").write_text(OLD)
    git("add", ".")
    git("commit", "-qm", "old")
    (tmp_path / "specs" / "m.yaml").write_text(NEW)
    # a revision against the working tree, in a fresh process (as a user runs it)
    result = subprocess.run([sys.executable, "-m", "graphspec", "diff", "HEAD:specs/m.yaml", "specs/m.yaml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "  ~ d1 -> first  (renamed)" in result.stdout
    # git diff with graphspec as the external diff driver (docs/ci.md)
    (tmp_path / ".gitattributes").write_text("*.yaml diff=graphspec\n")
    git("config", "diff.graphspec.command", f"{sys.executable} -m graphspec diff")
    shown = subprocess.run(["git", "diff", "--ext-diff", "specs/m.yaml"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "graphspec diff a/specs/m.yaml -> b/specs/m.yaml" in shown.stdout
    assert "params: 53 -> 85 (+32)" in shown.stdout
