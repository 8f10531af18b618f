"""``graphspec plot``: the architecture picture of a checked spec (pure Python, no TensorFlow).

The picture is made from what ``check`` infers: one box per node (its name, Keras type, output shape
and parameters), the model's inputs and outputs as boxes of their own, calls of shared layers marked,
block instances (language 1.1) as nested clusters. The layout is our own layered (Sugiyama-style)
layout, so neither graphviz nor pydot is needed:

1. layers by longest path from the inputs (the graph is already in topological order);
2. a dummy point on every layer an edge crosses, so long edges (residual shortcuts) bend around boxes;
3. order within a layer by barycentres of the neighbours, a few sweeps down and up (ties kept
   together by block instance, so a block's nodes stay side by side);
4. x coordinates: each point at the mean x of its predecessors, pushed right past its left
   neighbour (chains stay straight), then the whole picture shifted to start at the margin.

Writers: SVG (the picture), Mermaid (``flowchart``; renders in GitHub Markdown) and DOT (for those
who do have graphviz). PNG is the SVG rendered by a headless Chromium, or by CairoSVG if installed.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PlotGraph", "plot_graph", "layout", "to_svg", "to_mermaid", "to_dot", "write_plot", "PlotError"]

NODE_H = 62
LAYER_GAP = 72
COL_GAP = 28
MARGIN = 24
CHAR_W = 7.2
FONT = 12
MAX_CHARS = 44

STYLE = {  # kind -> (fill, stroke)
    "input": ("#d8f3dc", "#2d6a4f"),
    "output": ("#ffe8cc", "#d9480f"),
    "layer": ("#e7f0fb", "#1c4e80"),
    "shared": ("#f3e8ff", "#7048e8"),
    "op": ("#fff9db", "#e67700"),
    "sequential": ("#e6fcf5", "#087f5b"),
    "model": ("#f1f3f5", "#495057"),
}


class PlotError(Exception):
    """A picture that cannot be written (unknown format, no PNG renderer)."""


@dataclass
class PNode:
    id: str
    kind: str
    lines: list[str]
    cluster: int | None = None
    """Index of the innermost cluster (block instance) this node belongs to."""
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = NODE_H
    layer: int = 0


@dataclass
class PEdge:
    src: str
    dst: str
    label: str = ""
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class PCluster:
    label: str
    parent: int | None
    box: tuple[float, float, float, float] | None = None  # x, y, w, h
    depth: int = 0


@dataclass
class PlotGraph:
    name: str
    nodes: dict[str, PNode]
    edges: list[PEdge]
    clusters: list[PCluster]
    width: float = 0.0
    height: float = 0.0


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"


def _shape(info) -> str:
    if info is None:
        return "shape ?"
    if isinstance(info, list):
        return " ".join(_shape_one(t) for t in info)
    return _shape_one(info)


def _shape_one(t) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in t.shape)
    text = f"({dims}{',' if len(t.shape) == 1 else ''})"
    return text if t.dtype == "float32" else f"{text} {t.dtype}"


def plot_graph(checked) -> PlotGraph:
    """The nodes, edges and clusters of a checked spec (:class:`graphspec.pipeline.CheckedSpec`)."""
    graph, inferred = checked.graph, checked.inferred
    nodes: dict[str, PNode] = {}
    edges: list[PEdge] = []
    for name in graph.spec.inputs:
        nodes[f"in:{name}"] = PNode(f"in:{name}", "input", [name, "Input", _shape(inferred.inputs.get(name))])
    expansion = getattr(graph.source, "expansion", None)
    clusters: list[PCluster] = []
    index: dict[int, int] = {}

    def cluster_of(instance) -> int | None:
        if instance is None:
            return None
        key = id(instance)
        if key not in index:
            parent = cluster_of(instance.parent)
            index[key] = len(clusters)
            clusters.append(PCluster(instance.label(), parent,
                                     depth=0 if parent is None else clusters[parent].depth + 1))
        return index[key]

    for name, node in graph.nodes.items():
        info = inferred.nodes.get(name)
        kind = node.kind if node.kind in STYLE else "layer"
        type_text = {"layer": node.layer_type, "shared": f"{node.layer_type} (shared '{node.layer_name}')",
                     "sequential": "Sequential", "model": "saved model",
                     "op": f"op {getattr(node.spec, 'op', '')}"}.get(node.kind) or "?"
        if info is None or info.params is None:
            params = "params ?"
        elif not info.counted:
            params = "params (shared, counted once)"
        else:
            params = f"params {info.params + (info.non_trainable_params or 0):,}"
        instance = expansion.node_instance.get(name) if expansion is not None else None
        nodes[name] = PNode(name, kind, [name, type_text, _shape(info.outputs if info else None), params],
                            cluster=cluster_of(instance))
        structure = node.inputs
        labelled = []
        if isinstance(structure, dict):
            for arg, refs in structure.items():
                for ref in refs if isinstance(refs, list) else [refs]:
                    labelled.append((ref, arg))
        else:
            labelled = [(ref, "") for ref in node.input_refs()]
        for ref, arg in labelled:
            src = ref.name if ref.name in graph.nodes else f"in:{ref.name}"
            label = " ".join(x for x in (arg, f"[{ref.index}]" if ref.index is not None else "") if x)
            edges.append(PEdge(src, name, label))
    for out, ref in graph.outputs.items():
        oid = f"out:{out}"
        info = inferred.outputs.get(out)
        nodes[oid] = PNode(oid, "output", [out, "Output", _shape(info), ""])
        src = ref.name if ref.name in graph.nodes else f"in:{ref.name}"
        edges.append(PEdge(src, oid, f"[{ref.index}]" if ref.index is not None else ""))
    for n in nodes.values():
        n.lines = [_clip(line) for line in n.lines if line]
        n.w = max(len(line) for line in n.lines) * CHAR_W + 20
        n.h = 14 + 15 * len(n.lines)
    return PlotGraph(graph.spec.name, nodes, edges, clusters)


def layout(pg: PlotGraph, sweeps: int = 4) -> PlotGraph:
    """Place the nodes and route the edges (see the module's docstring); returns ``pg``."""
    order = list(pg.nodes)  # inputs, then nodes in topological order, then outputs: a topological order
    preds: dict[str, list[str]] = {n: [] for n in order}
    for e in pg.edges:
        preds[e.dst].append(e.src)
    for name in order:
        pg.nodes[name].layer = max((pg.nodes[p].layer + 1 for p in preds[name]), default=0)
    # Outputs on the layer just below their node; inputs just above their first consumer.
    succ_layers: dict[str, list[int]] = {}
    for e in pg.edges:
        succ_layers.setdefault(e.src, []).append(pg.nodes[e.dst].layer)
    for name, n in pg.nodes.items():
        if n.kind == "input" and succ_layers.get(name):
            n.layer = max(0, min(succ_layers[name]) - 1)
    # Points: real nodes and dummies per layer; each edge becomes a chain of points.
    nlayers = max((n.layer for n in pg.nodes.values()), default=0) + 1
    rows: list[list[str]] = [[] for _ in range(nlayers)]
    for name in order:
        rows[pg.nodes[name].layer].append(name)
    up: dict[str, list[str]] = {name: [] for name in order}
    down: dict[str, list[str]] = {name: [] for name in order}
    width: dict[str, float] = {name: pg.nodes[name].w for name in order}
    cluster: dict[str, int] = {name: (-1 if pg.nodes[name].cluster is None else pg.nodes[name].cluster) for name in order}
    chains: list[list[str]] = []
    for i, e in enumerate(pg.edges):
        a, b = pg.nodes[e.src].layer, pg.nodes[e.dst].layer
        chain = [e.src]
        for k in range(a + 1, b):
            d = f"\0{i}:{k}"
            rows[k].append(d)
            width[d] = 8.0
            cluster[d] = cluster[e.dst]
            up[d], down[d] = [], []
            chain.append(d)
        chain.append(e.dst)
        for s, t in zip(chain, chain[1:]):
            down[s].append(t)
            up[t].append(s)
        chains.append(chain)
    pos: dict[str, int] = {}
    for row in rows:
        for i, p in enumerate(row):
            pos[p] = i

    def sweep(rng, neighbours):
        for k in rng:
            row = rows[k]
            keyed = []
            for i, p in enumerate(row):
                ns = neighbours[p]
                bary = sum(pos[q] for q in ns) / len(ns) if ns else float(i)
                keyed.append((bary, cluster[p], i, p))
            keyed.sort()
            rows[k] = [p for *_, p in keyed]
            for i, p in enumerate(rows[k]):
                pos[p] = i

    for _ in range(sweeps):
        sweep(range(1, nlayers), up)
        sweep(range(nlayers - 2, -1, -1), down)
    # x: mean of the predecessors (or successors for sources), pushed right to keep the order.
    x: dict[str, float] = {}
    layer_y: list[float] = []
    y = MARGIN + 20.0
    for k, row in enumerate(rows):
        layer_y.append(y)
        y += max((pg.nodes[p].h for p in row if p in pg.nodes), default=10) + LAYER_GAP
    for sweep_no in range(2):
        for k, row in enumerate(rows):
            wants, offsets, off = [], [], 0.0
            for i, p in enumerate(row):
                ns = [q for q in up[p] if q in x] if sweep_no == 0 else [q for q in up[p] + down[p] if q in x]
                wants.append(sum(x[q] for q in ns) / len(ns) if ns else x.get(p, 0.0))
                if i:
                    off += (width[row[i - 1]] + width[p]) / 2 + COL_GAP
                offsets.append(off)
            for p, v, o in zip(row, _pav([w - o for w, o in zip(wants, offsets)]), offsets):
                x[p] = v + o
    shift = MARGIN - min(x[p] - width[p] / 2 for p in x)
    for p in x:
        x[p] += shift
    for name, n in pg.nodes.items():
        n.x = x[name] - n.w / 2
        n.y = layer_y[n.layer]
    for e, chain in zip(pg.edges, chains):
        s, t = pg.nodes[e.src], pg.nodes[e.dst]
        pts = [(s.x + s.w / 2, s.y + s.h)]
        for d in chain[1:-1]:
            k = int(d.split(":")[1])
            pts.append((x[d], layer_y[k] + NODE_H / 2))
        pts.append((t.x + t.w / 2, t.y))
        e.points = pts
    # Cluster boxes, innermost first (a box holds its nodes and its nested clusters' boxes).
    boxes: dict[int, list[float]] = {}
    for n in pg.nodes.values():
        c = n.cluster
        while c is not None:
            b = boxes.setdefault(c, [n.x, n.y, n.x + n.w, n.y + n.h])
            b[0], b[1], b[2], b[3] = min(b[0], n.x), min(b[1], n.y), max(b[2], n.x + n.w), max(b[3], n.y + n.h)
            c = pg.clusters[c].parent
    maxdepth = max((c.depth for c in pg.clusters), default=0)
    for i, c in enumerate(pg.clusters):
        if i in boxes:
            b = boxes[i]
            levels = 1 + maxdepth - c.depth
            pad, top = 6 * levels, 16 * levels
            c.box = (b[0] - pad, b[1] - top, b[2] - b[0] + 2 * pad, b[3] - b[1] + top + pad)
    xs = [n.x + n.w for n in pg.nodes.values()] + [c.box[0] + c.box[2] for c in pg.clusters if c.box]
    ys = [n.y + n.h for n in pg.nodes.values()] + [c.box[1] + c.box[3] for c in pg.clusters if c.box]
    minx = min([n.x for n in pg.nodes.values()] + [c.box[0] for c in pg.clusters if c.box] + [MARGIN])
    miny = min([n.y for n in pg.nodes.values()] + [c.box[1] for c in pg.clusters if c.box] + [MARGIN])
    dx, dy = MARGIN - minx, MARGIN + 20 - miny
    if dx or dy:
        for n in pg.nodes.values():
            n.x += dx
            n.y += dy
        for e in pg.edges:
            e.points = [(px + dx, py + dy) for px, py in e.points]
        for c in pg.clusters:
            if c.box:
                c.box = (c.box[0] + dx, c.box[1] + dy, c.box[2], c.box[3])
    pg.width = max(xs, default=0) + dx + MARGIN
    pg.height = max(ys, default=0) + dy + MARGIN
    return pg


def _pav(values: list[float]) -> list[float]:
    """Isotonic regression (pool adjacent violators): the nondecreasing sequence nearest to ``values``.

    Used for x: each point as near its wanted x as the order and the gaps allow, pushed both ways."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    out: list[float] = []
    for m, c in blocks:
        out.extend([m] * int(c))
    return out


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def to_svg(pg: PlotGraph) -> str:
    """A standalone SVG document; every node is a ``<g class="node" data-id=...>`` with one ``<rect>``."""
    w, h = int(pg.width + 0.999), int(pg.height + 0.999)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT}">',
           f"<title>{html.escape(pg.name)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
           f'<rect class="background" x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>',
           f'<text x="{MARGIN}" y="{MARGIN}" font-size="14" font-weight="bold" fill="#222">{html.escape(pg.name)}</text>']
    for i, c in sorted(((i, c) for i, c in enumerate(pg.clusters) if c.box), key=lambda ic: ic[1].depth):
        x, y, cw, ch = c.box
        out.append(f'<g class="cluster" data-index="{i}" data-parent="{"" if c.parent is None else c.parent}" data-label="{html.escape(c.label, quote=True)}">'
                   f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(cw)}" height="{_f(ch)}" rx="8" '
                   f'fill="#868e96" fill-opacity="0.07" stroke="#868e96" stroke-dasharray="4 3"/>'
                   f'<text x="{_f(x + 6)}" y="{_f(y + 12)}" font-size="10" fill="#495057">{html.escape(_clip(c.label))}</text></g>')
    for e in pg.edges:
        d = " ".join(f"{'M' if i == 0 else 'L'}{_f(px)},{_f(py)}" for i, (px, py) in enumerate(e.points))
        out.append(f'<path class="edge" data-src="{html.escape(e.src, quote=True)}" data-dst="{html.escape(e.dst, quote=True)}" '
                   f'd="{d}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>')
        if e.label:
            (x1, y1), (x2, y2) = e.points[-2], e.points[-1]
            out.append(f'<text class="edge-label" x="{_f((x1 + x2) / 2 + 4)}" y="{_f((y1 + y2) / 2)}" font-size="10" '
                       f'fill="#555">{html.escape(e.label)}</text>')
    for n in pg.nodes.values():
        fill, stroke = STYLE[n.kind]
        rx = n.h / 2 if n.kind in ("input", "output") else 4
        dash = ' stroke-dasharray="6 3"' if n.kind == "shared" else ""
        cl = "" if n.cluster is None else f' data-cluster="{n.cluster}"'
        out.append(f'<g class="node {n.kind}" data-id="{html.escape(n.id, quote=True)}"{cl}>'
                   f'<rect x="{_f(n.x)}" y="{_f(n.y)}" width="{_f(n.w)}" height="{_f(n.h)}" rx="{_f(min(rx, 16))}" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="{2 if n.kind in ("input", "output", "shared") else 1.2}"{dash}/>')
        for i, line in enumerate(n.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            color = "#111" if i == 0 else "#333"
            out.append(f'<text x="{_f(n.x + n.w / 2)}" y="{_f(n.y + 19 + 15 * i)}" text-anchor="middle" fill="{color}"{weight}>'
                       f"{html.escape(line)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _mid(node_id: str) -> str:
    # Mermaid ids: prefixed, so a node called 'end' or 'graph' is no keyword.
    return "n_" + node_id.replace(":", "__")


def _mq(text: str) -> str:
    return html.escape(text, quote=True).replace("&#x27;", "#39;").replace("&quot;", "#quot;")


def to_mermaid(pg: PlotGraph) -> str:
    """A Mermaid ``flowchart`` (renders in GitHub Markdown inside a ```` ```mermaid ```` fence)."""
    out = [f"---\ntitle: {pg.name}\n---", "flowchart TB"]
    children, members = _cluster_tree(pg)

    def node_line(n: PNode, indent: str) -> str:
        label = "<br/>".join(_mq(line) for line in n.lines)
        open_, close = {"input": ("([", "])"), "output": ("([", "])"), "shared": ("[[", "]]"),
                        "op": ("{{", "}}")}.get(n.kind, ("[", "]"))
        return f'{indent}{_mid(n.id)}{open_}"{label}"{close}:::{n.kind}'

    def emit(cluster: int | None, indent: str) -> None:
        for n in members.get(cluster, []):
            out.append(node_line(n, indent))
        for child in children.get(cluster, []):
            out.append(f'{indent}subgraph c{child}["{_mq(pg.clusters[child].label)}"]')
            emit(child, indent + "  ")
            out.append(f"{indent}end")

    emit(None, "  ")
    for e in pg.edges:
        label = f'|"{_mq(e.label)}"|' if e.label else ""
        out.append(f"  {_mid(e.src)} -->{label} {_mid(e.dst)}")
    for kind, (fill, stroke) in STYLE.items():
        dash = ",stroke-dasharray:6 3" if kind == "shared" else ""
        out.append(f"  classDef {kind} fill:{fill},stroke:{stroke}{dash}")
    return "\n".join(out) + "\n"


def _cluster_tree(pg: PlotGraph) -> tuple[dict[int | None, list[int]], dict[int | None, list[PNode]]]:
    """Block-instance clusters by parent (None: the top level), and the nodes directly in each."""
    children: dict[int | None, list[int]] = {}
    for i, c in enumerate(pg.clusters):
        children.setdefault(c.parent, []).append(i)
    members: dict[int | None, list[PNode]] = {}
    for n in pg.nodes.values():
        members.setdefault(n.cluster, []).append(n)
    return children, members


MERMAID_MAX_TEXT = 50_000
MERMAID_MAX_EDGES = 500
"""Mermaid's defaults (``maxTextSize``, ``maxEdges``), which GitHub's renderer keeps."""


def mermaid_warning(text: str, pg: PlotGraph) -> str | None:
    """Why GitHub would not render this Mermaid text (over Mermaid's default limits), or None."""
    over = []
    if len(text) > MERMAID_MAX_TEXT:
        over.append(f"{len(text):,} characters (Mermaid renders at most {MERMAID_MAX_TEXT:,})")
    if len(pg.edges) > MERMAID_MAX_EDGES:
        over.append(f"{len(pg.edges):,} edges (at most {MERMAID_MAX_EDGES:,})")
    return None if not over else "the Mermaid text has " + " and ".join(over) + \
        ": GitHub will not render it; write .svg for a graph this size"


def _dq(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(pg: PlotGraph) -> str:
    """Graphviz DOT text (block instances as ``cluster`` subgraphs)."""
    out = [f'digraph "{_dq(pg.name)}" {{', "  rankdir=TB;",
           '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10];']
    children, members = _cluster_tree(pg)

    def emit(cluster: int | None, indent: str) -> None:
        for n in members.get(cluster, []):
            fill, stroke = STYLE[n.kind]
            style = '"rounded,filled,dashed"' if n.kind == "shared" else '"rounded,filled"'
            shape = "ellipse" if n.kind in ("input", "output") else "box"
            label = "\\n".join(_dq(line) for line in n.lines)
            out.append(f'{indent}"{_dq(n.id)}" [label="{label}", shape={shape}, style={style}, '
                       f'fillcolor="{fill}", color="{stroke}"];')
        for child in children.get(cluster, []):
            out.append(f"{indent}subgraph cluster_{child} {{")
            out.append(f'{indent}  label="{_dq(pg.clusters[child].label)}"; style=dashed; color="#868e96";')
            emit(child, indent + "  ")
            out.append(f"{indent}}}")

    emit(None, "  ")
    for e in pg.edges:
        label = f' [label="{_dq(e.label)}"]' if e.label else ""
        out.append(f'  "{_dq(e.src)}" -> "{_dq(e.dst)}"{label};')
    out.append("}")
    return "\n".join(out) + "\n"


def chromium() -> str | None:
    """The headless browser used for PNG, if one is installed (``GRAPHSPEC_CHROMIUM`` overrides)."""
    env = os.environ.get("GRAPHSPEC_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(svg_path: Path, png_path: Path, width: int, height: int, timeout: float = 120) -> None:
    """Render an SVG file to PNG with headless Chromium at 1 CSS pixel = 1 image pixel."""
    browser = chromium()
    if browser is None:
        raise PlotError("no headless Chromium found for PNG")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--force-device-scale-factor=1", f"--user-data-dir={profile}", "--no-first-run",
               f"--window-size={width},{height}", f"--screenshot={png_path}", svg_path.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not png_path.exists():
        raise PlotError(f"Chromium failed to render the SVG (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")


def write_plot(checked, output: Path, warn=None) -> PlotGraph:
    """Write the picture of a checked spec; the format is the extension (.svg, .mmd, .dot, .png).

    ``warn`` (a callable taking a message) hears about a Mermaid text too large for GitHub."""
    suffix = output.suffix.lower()
    if suffix not in (".svg", ".mmd", ".mermaid", ".dot", ".gv", ".png"):
        raise PlotError(f"unknown picture format '{output.suffix}' (use .svg, .mmd, .dot or .png)")
    pg = plot_graph(checked)
    if suffix in (".mmd", ".mermaid"):
        text = to_mermaid(pg)
        output.write_text(text, encoding="utf-8")
        message = mermaid_warning(text, pg)
        if message and warn is not None:
            warn(message)
        return pg
    if suffix in (".dot", ".gv"):
        output.write_text(to_dot(pg), encoding="utf-8")
        return pg
    svg = to_svg(layout(pg))
    if suffix == ".svg":
        output.write_text(svg, encoding="utf-8")
        return pg
    try:
        import cairosvg  # type: ignore[import-not-found]

        cairosvg.svg2png(bytestring=svg.encode(), write_to=str(output))
        return pg
    except ImportError:
        pass
    if chromium() is None:
        raise PlotError("PNG needs a renderer for the SVG: install Chromium (Debian/Ubuntu: "
                        "apt-get install chromium) or CairoSVG (pip install cairosvg), or write .svg instead")
    with tempfile.TemporaryDirectory() as tmp:
        svg_path = Path(tmp) / "model.svg"
        svg_path.write_text(svg, encoding="utf-8")
        screenshot(svg_path, output, int(pg.width + 0.999), int(pg.height + 0.999))
    return pg
