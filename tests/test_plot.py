"""graphspec plot: the layered layout, the SVG/Mermaid/DOT writers, and the SVG as a real browser draws it."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec import plot as gplot
from graphspec.cli import app
from graphspec.pipeline import check_file, check_text

from testkit import REPO

SVG = "{http://www.w3.org/2000/svg}"
SPECS = REPO / "specs"

def _spec(tmp_path: Path) -> Path:
    text = """\
graphspec: 1
name: plotted
inputs:
  a: {shape: [10]}
  b: {shape: [10]}
  seq: {shape: [5, 3]}
layers:
  proj: {type: Dense, units: 16, activation: relu}
nodes:
  pa: {shared: proj, input: a}
  pb: {shared: proj, input: b}
  both: {type: Concatenate, input: [pa, pb]}
  head: {type: Dense, units: 1, input: both}
  lstm: {type: LSTM, units: 4, return_state: true, input: seq}
outputs: {score: head, state: "lstm[1]"}
"""
    path = tmp_path / "plotted.yaml"
    path.write_text(text)
    return path


def _nodes(svg_text: str) -> dict[str, dict]:
    root = ET.fromstring(svg_text)
    out = {}
    for g in root.iter(f"{SVG}g"):
        if "node" not in g.get("class", "").split():
            continue
        rect = g.find(f"{SVG}rect")
        out[g.get("data-id")] = {
            "kind": g.get("class").split()[1], "cluster": g.get("data-cluster"),
            "box": tuple(float(rect.get(k)) for k in ("x", "y", "width", "height")),
            "fill": rect.get("fill"), "lines": [t.text for t in g.findall(f"{SVG}text")]}
    return out


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_svg_shows_type_shape_params_and_marks_inputs_outputs_shared(tmp_path):
    pg = gplot.layout(gplot.plot_graph(check_file(_spec(tmp_path))))
    nodes = _nodes(gplot.to_svg(pg))
    assert {k: v["kind"] for k, v in nodes.items()} == {
        "in:a": "input", "in:b": "input", "in:seq": "input", "pa": "shared", "pb": "shared", "both": "layer",
        "head": "layer", "lstm": "layer", "out:score": "output", "out:state": "output"}
    assert nodes["both"]["lines"] == ["both", "Concatenate", "(None, 32)", "params 0"]
    assert nodes["pa"]["lines"] == ["pa", "Dense (shared 'proj')", "(None, 16)", "params 176"]
    assert nodes["pb"]["lines"][-1] == "params (shared, counted once)"
    assert nodes["out:state"]["lines"] == ["state", "Output", "(None, 4)"]
    assert len({v["fill"] for v in nodes.values()}) == 4  # input, output, shared, plain layer: distinct
    # Edges go down: every edge from the bottom of its source to the top of its target; the index is a label.
    for e in pg.edges:
        s, t = pg.nodes[e.src], pg.nodes[e.dst]
        assert e.points[0] == (s.x + s.w / 2, s.y + s.h) and e.points[-1] == (t.x + t.w / 2, t.y)
        assert t.y > s.y + s.h
    assert [e.label for e in pg.edges if e.dst == "out:state"] == ["[1]"]
    boxes = [v["box"] for v in nodes.values()]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_resnet50_readable_blocks_are_clusters_holding_their_nodes():
    checked = check_file(SPECS / "resnet50.yaml")
    pg = gplot.layout(gplot.plot_graph(checked))
    svg = gplot.to_svg(pg)
    nodes = _nodes(svg)
    assert len(nodes) == len(checked.graph.nodes) + 2  # + the input and the output
    boxes = sorted(v["box"] for v in nodes.values())
    # no two boxes overlap (sorted by x: compare neighbours within reach only)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if b[0] >= a[0] + a[2]:
                break
            assert not _overlap(a, b), (a, b)
    # narrow enough to read (a residual block is two columns wide), not drifting sideways
    assert pg.width < 700, pg.width
    root = ET.fromstring(svg)
    clusters = {g.get("data-index"): g for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"}
    labels = [g.get("data-label") for g in clusters.values()]
    assert sum(label.startswith("conv") and "'residual'" in label for label in labels) == 16
    assert sum("'stack'" in label for label in labels) == 4

    def box(idx):
        rect = clusters[idx].find(f"{SVG}rect")
        return tuple(float(rect.get(k)) for k in ("x", "y", "width", "height"))

    def inside(inner, outer):
        return (outer[0] <= inner[0] and outer[1] <= inner[1] and inner[0] + inner[2] <= outer[0] + outer[2]
                and inner[1] + inner[3] <= outer[1] + outer[3])

    members = 0
    for name, v in nodes.items():
        idx = v["cluster"]
        while idx:  # a node is inside its block instance's box and every enclosing one
            assert inside(v["box"], box(idx)), name
            members += 1
            idx = clusters[idx].get("data-parent")
    assert members > 300
    assert nodes["conv2_block1_add"]["cluster"] is not None and nodes["conv1_conv"]["cluster"] is None


@pytest.mark.parametrize("spec, width, instances", [(SPECS / "resnet50.yaml", 700, 20),
                                                    (REPO / "tests/fixtures/plot/densenet121.yaml", 500, 65)],
                         ids=["resnet50", "densenet121"])
def test_large_graphs_stay_readable(spec, width, instances):
    """No box overlaps another, no edge bends inside a box, the picture does not drift sideways."""
    checked = check_file(spec)
    pg = gplot.layout(gplot.plot_graph(checked))
    assert len(pg.nodes) == len(checked.graph.nodes) + len(checked.spec.inputs) + len(checked.graph.outputs)
    assert len(pg.clusters) == instances
    assert pg.width < width, pg.width
    boxes = sorted((n.x, n.y, n.w, n.h) for n in pg.nodes.values())
    by_layer: dict[float, list] = {}
    for box in boxes:
        by_layer.setdefault(box[1], []).append(box)
    for row in by_layer.values():
        for a, b in zip(row, row[1:]):
            assert a[0] + a[2] + gplot.COL_GAP <= b[0] + 1e-6, (a, b)
    for e in pg.edges:
        for px, py in e.points[1:-1]:  # the bends of a long edge (a shortcut) lie beside the boxes
            for row in by_layer.values():
                for (x, y, w, h) in row:
                    assert not (x <= px <= x + w and y <= py <= y + h), (e.src, e.dst, (px, py))


def test_mermaid_and_dot_text(tmp_path):
    checked = check_file(SPECS / "resnet18.yaml")
    mmd = gplot.to_mermaid(gplot.plot_graph(checked))
    lines = mmd.splitlines()
    assert lines[3] == "flowchart TB"
    node_lines = [line for line in lines if re.match(r"\s*n_\w+(\(\[|\[\[|\[|\{\{)\"", line)]
    assert len(node_lines) == len(checked.graph.nodes) + 2
    assert sum(line.strip().startswith("subgraph ") for line in lines) == sum(line.strip() == "end" for line in lines) > 0
    for line in node_lines:  # the label is one quoted string: no raw quote inside it
        label = line.split('"', 1)[1].rsplit('"', 1)[0]
        assert '"' not in label and "<br/>" in label
    edges = [line for line in lines if "-->" in line]
    assert len(edges) == sum(len(n.input_refs()) for n in checked.graph.nodes.values()) + 1
    assert "classDef shared" in mmd and ":::input" in mmd and ":::output" in mmd
    dot = gplot.to_dot(gplot.plot_graph(checked))
    assert dot.startswith('digraph "resnet18" {') and dot.rstrip().endswith("}")
    assert dot.count("subgraph cluster_") == mmd.count("subgraph c")
    assert dot.count(" -> ") == len(edges)


def test_mermaid_too_large_for_github_is_written_with_a_warning(tmp_path):
    runner = CliRunner()
    out = tmp_path / "d.mmd"
    result = runner.invoke(app, ["plot", str(REPO / "tests/fixtures/plot/densenet121.yaml"), "-o", str(out)])
    assert result.exit_code == 0 and out.read_text().count("-->") == 487
    assert "warning: the Mermaid text has" in result.stderr and "487 edges" not in result.stderr
    assert "GitHub will not render it" in result.stderr
    result = runner.invoke(app, ["plot", str(SPECS / "resnet50.yaml"), "-o", str(tmp_path / "r.mmd")])
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_a_node_called_end_is_no_mermaid_keyword():
    checked = check_text("graphspec: 1\nname: m\ninputs: {x: {shape: [3]}}\nnodes:\n  end: {type: Dense, units: 2}\n"
                         "outputs: [end]\n")
    mmd = gplot.to_mermaid(gplot.plot_graph(checked))
    assert '  n_end["end<br/>Dense<br/>(None, 2)<br/>params 8"]:::layer' in mmd
    assert "  n_in__x --> n_end" in mmd


def test_cli_writes_each_format_and_refuses_unknown_ones(tmp_path):
    spec = _spec(tmp_path)
    runner = CliRunner()
    for suffix, start in ((".svg", "<svg"), (".mmd", "---"), (".dot", "digraph")):
        out = tmp_path / f"model{suffix}"
        result = runner.invoke(app, ["plot", str(spec), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_text().startswith(start)
    result = runner.invoke(app, ["plot", str(spec), "-o", str(tmp_path / "model.jpg")])
    assert result.exit_code == 2 and "unknown picture format '.jpg'" in result.stderr
    # a spec mistake is the usual located diagnostic
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("input: both", "input: bothh"))
    result = runner.invoke(app, ["plot", str(bad), "-o", str(tmp_path / "x.svg")])
    assert result.exit_code == 2 and "did you mean 'both'" in result.stderr


def test_png_without_a_renderer_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(gplot, "chromium", lambda: None)
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # import fails as if not installed
    with pytest.raises(gplot.PlotError, match="install Chromium .*apt-get install chromium.* or CairoSVG"):
        gplot.write_plot(check_file(_spec(tmp_path)), tmp_path / "m.png")
    assert not (tmp_path / "m.png").exists()


def test_plot_does_not_import_tensorflow(tmp_path):
    from test_cli import PROBE

    result = subprocess.run([sys.executable, "-c", PROBE, "plot", str(_spec(tmp_path)), "-o", str(tmp_path / "m.svg")],
                            capture_output=True, text=True, timeout=60, cwd=REPO / "tests")
    assert result.returncode == 0 and "HEAVY=\n" in result.stderr, result.stderr[-2000:]


def test_browser_draws_the_boxes_where_the_svg_says(tmp_path):
    """A real headless Chromium (installed by .ci/run) renders the SVG; the pixels are checked."""
    from PIL import Image

    assert gplot.chromium() is not None, "Chromium is needed for this test: apt-get install -y chromium (see .ci/run)"
    spec = _spec(tmp_path)
    result = CliRunner().invoke(app, ["plot", str(spec), "-o", str(tmp_path / "m.svg")])
    assert result.exit_code == 0, result.output
    svg = (tmp_path / "m.svg").read_text()
    width, height = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg).groups())
    gplot.screenshot(tmp_path / "m.svg", tmp_path / "m.png", width, height)
    image = Image.open(tmp_path / "m.png").convert("RGB")
    assert image.size == (width, height)
    nodes = _nodes(svg)

    def rgb(color):
        return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))

    def near(a, b, tol=12):
        return all(abs(x - y) <= tol for x, y in zip(a, b))

    for name, v in nodes.items():
        x, y, w, h = v["box"]
        # the fill colour inside the box, near its left edge (past the rounded corner), where no text is
        assert near(image.getpixel((int(x + 5), int(y + h / 2))), rgb(v["fill"])), name
        # just outside the box: the white background
        assert near(image.getpixel((int(x - 4), int(y + h / 2))), (255, 255, 255)), name
        # the text: dark pixels in the box's first line (the name, drawn in bold), as wide as the name roughly
        # (inset past the border and the rounded corners)
        dark = [px for px in range(int(x + 18), int(x + w - 18)) for py in range(int(y + 8), int(y + 22))
                if sum(image.getpixel((px, py))) < 300]
        assert dark, f"no text drawn in {name}"
        span = max(dark) - min(dark)
        assert 0.5 * len(v["lines"][0]) * gplot.CHAR_W < span < 1.5 * len(v["lines"][0]) * gplot.CHAR_W + 10, name
    # the CLI's PNG is the same picture
    result = CliRunner().invoke(app, ["plot", str(spec), "-o", str(tmp_path / "cli.png")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "cli.png").convert("RGB").getpixel((10, 10)) == (255, 255, 255)
