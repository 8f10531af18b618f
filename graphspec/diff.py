"""``graphspec diff OLD NEW``: what changed between two versions of a spec, and what it does to the model.

What the author edited, from the spec as written (language 1.1 blocks and parameters unexpanded):
nodes added, removed and renamed (same entry under a new name), their arguments changed, and every
other value changed by path (``inputs``, ``blocks``, ``params``, ``compile``, ...). What it does, from
both specs checked (pure Python, no TensorFlow): inputs rewired (each node's resolved inputs, implicit
ones included), parameters per node and in total (before -> after), output shapes and dtypes that
changed, and the spec and graph hashes. Text, Markdown (a pull-request comment) or JSON.

A side is a file, or a git revision ``REV:PATH`` (``main:specs/x.yaml``, read with ``git show``), or
``/dev/null`` (the spec is new, or deleted). ``graphspec diff`` also takes git's seven diff-driver
arguments (docs/ci.md, "graphspec diff as a git diff driver").
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError

MISSING = object()
DEV_NULL = "/dev/null"


class DiffError(GraphspecError):
    """A side of the diff cannot be read (no such file or revision)."""

    stage = "diff"


@dataclass
class Side:
    label: str
    text: str | None
    path: Path | None = None
    data: Any = None
    checked: Any = None
    errors: list[Diagnostic] = field(default_factory=list)
    partial: bool = False


def read_side(argument: str) -> Side:
    """A side of the diff from a file, ``REV:PATH`` (git) or /dev/null."""
    if argument == DEV_NULL:
        return Side(DEV_NULL, None)
    path = Path(argument)
    if path.is_file():
        try:
            return Side(argument, path.read_bytes().decode("utf-8-sig"), path)
        except (OSError, UnicodeDecodeError) as error:
            raise DiffError([Diagnostic(code="file-unreadable", message=f"cannot read {argument}: {error}",
                                        file=argument)]) from None
    rev, sep, rel = argument.partition(":")
    if sep and rev and rel:
        try:
            shown = subprocess.run(["git", "show", f"{rev}:{rel}"], capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DiffError([Diagnostic(code="git-show-failed", message=f"cannot run git show {argument}: {error}")]) from None
        if shown.returncode != 0:
            raise DiffError([Diagnostic(code="git-show-failed", message=f"git show {argument} failed: "
                                        f"{shown.stderr.decode('utf-8', 'replace').strip()}")])
        root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
        base = Path(root.stdout.strip()) if root.returncode == 0 else Path.cwd()
        rel_path = Path(rel[2:] if rel.startswith("./") else rel)
        return Side(argument, shown.stdout.decode("utf-8-sig", "replace"), base / rel_path)
    raise DiffError([Diagnostic(code="file-not-found", message=f"no such file or git revision: {argument}",
                                hint="a file, REV:PATH (e.g. main:specs/x.yaml), or /dev/null")])


def _load(side: Side) -> None:
    if side.text is None:
        return
    from graphspec.loader import LoadedSpec, loads
    from graphspec.pipeline import check_loaded

    try:
        loaded = loads(side.text, file=side.label)
    except GraphspecError as error:
        side.errors = error.errors
        return
    side.data = loaded.data
    path = side.path or Path.cwd() / "spec.yaml"
    try:
        side.checked = check_loaded(loaded, path)
    except GraphspecError as error:
        side.errors = error.errors
        if isinstance(loaded.data, dict) and "expect" in loaded.data and \
                all(d.code.startswith("expect") for d in error.errors):
            # A failed 'expect:' is reported, and the model is still compared (its parameters are the point).
            without = LoadedSpec({k: v for k, v in loaded.data.items() if k != "expect"}, loaded.source)
            try:
                side.checked = check_loaded(without, path)
                side.partial = True  # its spec hash (which covers 'expect:') is not the one computed here
            except GraphspecError:
                pass


# ---- the written spec -----------------------------------------------------------------------------------

def _value_changes(old: Any, new: Any, path: str) -> list[dict]:
    """Every leaf that differs, by dotted path (lists compared whole when their lengths differ)."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in list(old) + [k for k in new if k not in old]:
            changes += _value_changes(old.get(key, MISSING), new.get(key, MISSING), f"{path}.{key}" if path else str(key))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and \
            any(isinstance(v, (dict, list)) for v in old + new):
        changes = []
        for index, (a, b) in enumerate(zip(old, new)):
            changes += _value_changes(a, b, f"{path}[{index}]")
        return changes
    if _same(old, new):
        return []
    return [{"path": path, "old": _shown(old), "new": _shown(new)}]


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return json.dumps(a, sort_keys=True, allow_nan=True, default=str) == json.dumps(b, sort_keys=True, allow_nan=True, default=str)


def _shown(value: Any) -> Any:
    return None if value is MISSING else value


def _kind(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "?"
    for key in ("type", "shared", "block", "op"):
        if key in entry:
            return {"type": "{}", "shared": "shared {}", "block": "block {}", "op": "op {}"}[key].format(entry[key])
    if "sequential" in entry:
        return "Sequential"
    if "model" in entry:
        return "saved model"
    return "?"


def _without_input(entry: Any) -> Any:
    return {k: v for k, v in entry.items() if k != "input"} if isinstance(entry, dict) else entry


def _node_changes(old_nodes: dict, new_nodes: dict) -> dict:
    removed = [n for n in old_nodes if n not in new_nodes]
    added = [n for n in new_nodes if n not in old_nodes]
    renamed: list[tuple[str, str]] = []
    for old_name in list(removed):
        for new_name in added:
            if _same(_without_input(old_nodes[old_name]), _without_input(new_nodes[new_name])):
                renamed.append((old_name, new_name))
                removed.remove(old_name)
                added.remove(new_name)
                break
    changed = {}
    for name in old_nodes:
        if name in new_nodes:
            entry_changes = [c for c in _value_changes(_without_input(old_nodes[name]), _without_input(new_nodes[name]), "")]
            if entry_changes:
                changed[name] = entry_changes
    return {"added": [{"name": n, "kind": _kind(new_nodes[n])} for n in added],
            "removed": [{"name": n, "kind": _kind(old_nodes[n])} for n in removed],
            "renamed": [{"old": a, "new": b} for a, b in renamed],
            "changed": changed}


# ---- consequences ----------------------------------------------------------------------------------------

def _params(info) -> int | None:
    if info is None or info.params is None:
        return None
    if not info.counted:
        return 0
    return info.params + (info.non_trainable_params or 0)


def _shape(info) -> str | None:
    if info is None or info.outputs is None:
        return None
    outputs = info.outputs if isinstance(info.outputs, list) else [info.outputs]
    return ", ".join(f"{o} {o.dtype}" for o in outputs)


def _inputs_text(node) -> Any:
    from graphspec.canonical import _ref_text

    return _ref_text(node.inputs)


def _renamed_refs(value: Any, renames: dict[str, str]) -> Any:
    if isinstance(value, str):
        head, dot, tail = value.partition(".")
        head, bracket, rest = head.partition("[")
        return renames.get(head, head) + bracket + rest + dot + tail
    if isinstance(value, list):
        return [_renamed_refs(v, renames) for v in value]
    if isinstance(value, dict):
        return {k: _renamed_refs(v, renames) for k, v in value.items()}
    return value


def _consequences(old: Side, new: Side, renames: dict[str, str]) -> dict:
    result: dict = {}
    a, b = old.checked, new.checked
    if a is None or b is None:
        return result
    old_nodes, new_nodes = a.graph.nodes, b.graph.nodes
    params_nodes = {}
    shapes = {}
    rewired = {}
    back = {v: k for k, v in renames.items()}
    for name in list(old_nodes) + [n for n in new_nodes if n not in old_nodes and n not in back]:
        new_name = renames.get(name, name)
        old_name = back.get(name, name) if name not in old_nodes else name
        before = a.inferred.nodes.get(old_name) if old_name in old_nodes else None
        after = b.inferred.nodes.get(new_name) if new_name in new_nodes else None
        shown = new_name if new_name in new_nodes else old_name
        p_old = _params(before) if before is not None else (0 if old_name not in old_nodes else None)
        p_new = _params(after) if after is not None else (0 if new_name not in new_nodes else None)
        if p_old != p_new:
            params_nodes[shown] = [p_old, p_new]
        if old_name in old_nodes and new_name in new_nodes:
            s_old, s_new = _shape(before), _shape(after)
            if s_old != s_new:
                shapes[shown] = [s_old, s_new]
            i_old = _renamed_refs(_inputs_text(old_nodes[old_name]), renames)
            i_new = _inputs_text(new_nodes[new_name])
            if not _same(i_old, i_new):
                rewired[shown] = [i_old, i_new]
    outputs = {}
    for name in list(a.inferred.outputs) + [n for n in b.inferred.outputs if n not in a.inferred.outputs]:
        o_old, o_new = a.inferred.outputs.get(name), b.inferred.outputs.get(name)
        t_old = None if o_old is None else f"{o_old} {o_old.dtype}"
        t_new = None if o_new is None else f"{o_new} {o_new.dtype}"
        if t_old != t_new:
            outputs[name] = [t_old, t_new]
    result["rewired"] = rewired
    result["params"] = {"total": [a.inferred.total_params, b.inferred.total_params], "nodes": params_nodes}
    result["shapes"] = shapes
    result["outputs"] = outputs
    return result


def diff_sides(old: Side, new: Side) -> dict:
    """The diff of two sides as plain data (the JSON output)."""
    from graphspec.canonical import graph_hash, spec_hash

    _load(old)
    _load(new)

    def summary(side: Side) -> dict:
        info: dict = {"spec": side.label, "exists": side.text is not None}
        if side.checked is not None:
            info.update(hash=None if side.partial else spec_hash(side.checked.graph), graph_hash=graph_hash(side.checked),
                        params=side.checked.inferred.total_params, nodes=len(side.checked.graph.nodes))
        if side.errors:
            info["errors"] = [d.to_dict() | {"file": d.file} for d in side.errors]
        return info

    result: dict = {"old": summary(old), "new": summary(new)}
    old_data = old.data if isinstance(old.data, dict) else {}
    new_data = new.data if isinstance(new.data, dict) else {}
    old_nodes = old_data.get("nodes") if isinstance(old_data.get("nodes"), dict) else {}
    new_nodes = new_data.get("nodes") if isinstance(new_data.get("nodes"), dict) else {}
    result["nodes"] = _node_changes(old_nodes, new_nodes)
    result["changes"] = _value_changes({k: v for k, v in old_data.items() if k != "nodes"},
                                       {k: v for k, v in new_data.items() if k != "nodes"}, "")
    renames = {r["old"]: r["new"] for r in result["nodes"]["renamed"]}
    result.update(_consequences(old, new, renames))
    result["same_hash"] = result["old"].get("hash") is not None and result["old"].get("hash") == result["new"].get("hash")
    return result


def diff(old: str, new: str) -> dict:
    return diff_sides(read_side(old), read_side(new))


# ---- rendering -------------------------------------------------------------------------------------------

def _v(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


def _n(count: int | None) -> str:
    return "?" if count is None else f"{count:,}"


def _delta(before: int | None, after: int | None) -> str:
    if before is None or after is None or before == after:
        return ""
    return f" ({after - before:+,})"


def _short(h: str | None) -> str:
    return "-" if h is None else h[:19]


def render_text(result: dict) -> str:
    old, new = result["old"], result["new"]
    lines = [f"graphspec diff {old['spec']} -> {new['spec']}"]
    if not old["exists"]:
        lines.append("  new spec")
    if not new["exists"]:
        lines.append("  spec deleted")
    for side, name in ((old, "old"), (new, "new")):
        for error in side.get("errors", [])[:5]:
            lines.append(f"  {name} does not check: {error['file'] or side['spec']}:{error['line']}:{error['col']}: "
                         f"error[{error['code']}]: {error['message']}")
    if old.get("hash") or new.get("hash"):
        same = "unchanged" if result["same_hash"] else f"{_short(old.get('hash'))} -> {_short(new.get('hash'))}"
        graph = "unchanged" if old.get("graph_hash") == new.get("graph_hash") else "changed"
        lines.append(f"  hash: {same}   (graph hash {graph})")
    nodes = result["nodes"]
    node_lines = [f"  + {a['name']}  ({a['kind']})" for a in nodes["added"]]
    node_lines += [f"  - {r['name']}  ({r['kind']})" for r in nodes["removed"]]
    node_lines += [f"  ~ {r['old']} -> {r['new']}  (renamed)" for r in nodes["renamed"]]
    for name, changes in nodes["changed"].items():
        node_lines += [f"  ~ {name}.{c['path']}: {_v(c['old'])} -> {_v(c['new'])}" for c in changes]
    for name, (a, b) in result.get("rewired", {}).items():
        node_lines.append(f"  ~ {name} input: {_v(a)} -> {_v(b)}")
    if node_lines:
        lines += ["nodes:"] + node_lines
    if result["changes"]:
        lines.append("other changes:")
        lines += [f"  ~ {c['path']}: {_v(c['old'])} -> {_v(c['new'])}" for c in result["changes"]]
    params = result.get("params")
    if params:
        before, after = params["total"]
        lines.append(f"params: {_n(before)} -> {_n(after)}{_delta(before, after)}" if before != after
                     else f"params: {_n(before)} (unchanged)")
        width = max((len(n) for n in params["nodes"]), default=0)
        for name, (a, b) in params["nodes"].items():
            lines.append(f"  {name.ljust(width)}  {_n(a):>12} -> {_n(b)}{_delta(a, b)}")
    if result.get("shapes"):
        lines.append("output shapes:")
        width = max(len(n) for n in result["shapes"])
        lines += [f"  {name.ljust(width)}  {_v(a)} -> {_v(b)}" for name, (a, b) in result["shapes"].items()]
    if result.get("outputs"):
        lines.append("model outputs:")
        lines += [f"  {name}: {_v(a)} -> {_v(b)}" for name, (a, b) in result["outputs"].items()]
    if len(lines) == 2 and result["same_hash"]:
        lines.append("no changes")
    return "\n".join(lines)


def _md(value: Any) -> str:
    return "`" + _v(value).replace("`", "'").replace("|", "\\|") + "`"


def render_markdown(result: dict) -> str:
    old, new = result["old"], result["new"]
    out = [f"### graphspec diff `{old['spec']}` → `{new['spec']}`", ""]
    if not old["exists"]:
        out += ["New spec.", ""]
    if not new["exists"]:
        out += ["Spec deleted.", ""]
    for side, name in ((old, "old"), (new, "new")):
        for error in side.get("errors", [])[:5]:
            out.append(f"- :x: {name} does not check: `{error['code']}` at line {error['line']}: {error['message']}")
    if any(side.get("errors") for side in (old, new)):
        out.append("")
    params = result.get("params")
    if params:
        before, after = params["total"]
        out.append(f"**Parameters:** {_n(before)} → {_n(after)}{_delta(before, after)}  ")
    if old.get("hash") or new.get("hash"):
        out.append(f"**Spec hash:** `{_short(old.get('hash'))}` → `{_short(new.get('hash'))}`"
                   + (" (unchanged)" if result["same_hash"] else ""))
    out.append("")
    nodes = result["nodes"]
    rows = [(f"`{a['name']}`", "added", a["kind"]) for a in nodes["added"]]
    rows += [(f"`{r['name']}`", "removed", r["kind"]) for r in nodes["removed"]]
    rows += [(f"`{r['new']}`", "renamed", f"from `{r['old']}`") for r in nodes["renamed"]]
    for name, changes in nodes["changed"].items():
        rows += [(f"`{name}`", f"`{c['path']}`", f"{_md(c['old'])} → {_md(c['new'])}") for c in changes]
    for name, (a, b) in result.get("rewired", {}).items():
        rows.append((f"`{name}`", "input", f"{_md(a)} → {_md(b)}"))
    if rows:
        out += ["| node | change | |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows] + [""]
    if result["changes"]:
        out += ["| setting | before | after |", "|---|---|---|"]
        out += [f"| `{c['path']}` | {_md(c['old'])} | {_md(c['new'])} |" for c in result["changes"]] + [""]
    if params and params["nodes"]:
        out += ["| node | params before | params after |", "|---|---:|---:|"]
        out += [f"| `{name}` | {_n(a)} | {_n(b)}{_delta(a, b)} |" for name, (a, b) in params["nodes"].items()] + [""]
    if result.get("shapes") or result.get("outputs"):
        out += ["| node | output before | output after |", "|---|---|---|"]
        out += [f"| `{name}` | {_md(a)} | {_md(b)} |" for name, (a, b) in result.get("shapes", {}).items()]
        out += [f"| output `{name}` | {_md(a)} | {_md(b)} |" for name, (a, b) in result.get("outputs", {}).items()]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
