"""Stage 1.5 — expand (language 1.1): blocks, ``repeat:``, ``when:`` and parameters to plain nodes.

Runs on the loaded plain data and its :class:`SourceMap`, before the schema stage, and gives
back plain data in language 1.0 form (a flat ``nodes:`` mapping, every ``${...}`` evaluated),
so schema, resolve, infer and emit run unchanged on it. Each expanded node's path
``("nodes", name)`` is *redirected* in the new source map to where the node is written (in
a block's definition, or under a ``repeat:``), with the instantiation notes, so a problem any
later stage finds in it points at the block's line and says which call it came from::

    resnet.yaml:30:47: error[bad-value]: nodes.conv2_block1_2_conv.filters: ...
      note: in block 'bottleneck' called at resnet.yaml:41:5 (i=0) with filters=64, strides=1

A spec without any 1.1 key (``params``, ``blocks``, ``variants``, ``variant`` at the top,
``block``, ``repeat``, ``when`` in a node) is passed through untouched: its meaning and its
hash do not change.

Names: a node ``k`` of a block instance ``inst`` is named ``inst_k``; an iteration of a
``repeat:`` node ``k`` is named by the repeat's ``name`` template (default ``k_${i}``), so that
``conv2: {block: stack}`` with ``block: {block: bottleneck, repeat: {count: 3, name: "block${i + 1}"}}``
inside gives Keras' own ``conv2_block1_1_conv``. A reference to an instance means its first
output (``inst[k]``: its k-th); a reference to a repeated node means its last iteration; a
reference to a node whose ``when:`` is false means that node's input (it passes it through).

Bounds: at most :data:`MAX_EXPANDED_NODES` nodes and instances in all (counted while expanding,
so a hostile spec is refused after bounded work, never expanded past the cap), a repeat count
of at most :data:`MAX_REPEAT`, blocks nested at most :data:`MAX_BLOCK_DEPTH` deep; a cycle of
block calls is refused before anything is expanded.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from graphspec import expr
from graphspec.errors import Diagnostic, DiagnosticSink, Path, SchemaError, did_you_mean, suggestion_budget
from graphspec.loader import LoadedSpec
from graphspec.schema.blocks import (  # noqa: F401 (NODE_KEYS_1_1, needs_expansion: importable from here as before)
    NODE_KEYS_1_1, RESERVED_BLOCK_CALL_KEYS, SECTIONS_1_1, BlockSpec, ModelParam, ParamSpec, RepeatSpec, VariantSpec,
    needs_expansion)
from graphspec.schema.model import Name
from graphspec.source import SourceMap

MAX_EXPANDED_NODES = 100_000
"""Most nodes (plus block instances and repeat iterations) one spec may expand to."""
MAX_REPEAT = 10_000
"""Largest ``repeat`` count."""
MAX_BLOCK_DEPTH = 16
"""Deepest nesting of block calls."""

_UNEVALUATED = ("params", "blocks", "variants", "variant", "description", "nodes", "graphspec", "plugins")
"""Top-level sections whose strings are not expressions (nodes are expanded; plugins name code, never computed)."""
_REF = re.compile(r"^([A-Za-z0-9_]+)(?:\[([0-9]+)\])?$")


class ExpandError(SchemaError):
    """A problem with blocks, repeat, parameters or expressions (reported with the schema stage's)."""

    stage = "expand"


class _Sections(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)  # built for 1.1 specs only

    variant: Name | None = None
    params: dict[Name, ModelParam] | None = None
    variants: dict[Name, VariantSpec] | None = None
    blocks: dict[Name, BlockSpec] | None = None


@dataclass
class Instance:
    """One block instance (or repeat iteration of a block) in the expanded graph."""

    name: str
    """The instance's name, the prefix of its nodes' names (``conv2_block1``)."""
    block: str
    args: dict[str, Any]
    """The arguments its call gave (defaults left out)."""
    parent: "Instance | None"
    call_path: Path
    nodes: list[str] = field(default_factory=list)
    """Expanded nodes directly in this instance (not in nested ones)."""

    def label(self) -> str:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.args.items())
        return f"{self.name} (block '{self.block}'" + (f": {shown})" if shown else ")")


@dataclass
class Expansion:
    """What the expand stage did: the spec as written (for its canonical form) and the instances."""

    written: dict
    """The spec's data as written, with the parameter values and variant in effect written in."""
    params: dict[str, Any]
    variant: str | None
    instances: list[Instance]
    node_instance: dict[str, Instance]
    """Expanded node name -> the innermost instance it belongs to (top-level nodes are absent)."""


def _show(value: Any) -> str:
    text = "true" if value is True else "false" if value is False else "null" if value is None else \
        (repr(value) if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_.\-]*", value) else str(value))
    return text if len(text) <= 40 else text[:37] + "..."


class _TooLarge(Exception):
    pass


class _Abort(Exception):
    pass


class _Over(Exception):
    """The size bound went past the cap at ``path`` (inside the block calls ``calls``, outermost first)."""

    def __init__(self, path: Path, calls: tuple[tuple[str, Path], ...]):
        super().__init__()
        self.path = path
        self.calls = calls


@dataclass
class _Frame:
    """The scope of one block instance (or of the top level)."""

    prefix: str
    scope: dict[str, Any]
    def_path: Path
    notes: tuple[str, ...]
    chain: tuple[str, ...]
    instance: Instance | None
    aliases: dict[str, Any] = field(default_factory=dict)
    """Local name -> a flat reference text, a list of them (an instance's outputs), or None (gone)."""
    local: set[str] = field(default_factory=set)
    """Local names of plain nodes made in this frame."""
    pending: list[tuple[Any, str, Any, Path, str]] = field(default_factory=list)
    """(container, key, raw reference, source path, node name) resolved when the frame is complete."""
    block_inputs: tuple[str, ...] = ()
    block_name: str | None = None


class Expander:
    def __init__(self, loaded: LoadedSpec, params: dict[str, Any] | None, variant: str | None,
                 param_origin: dict[str, str] | None):
        self.loaded = loaded
        self.data: dict = loaded.data
        self.source: SourceMap = loaded.source
        self.sink = DiagnosticSink(source=loaded.source)
        self.overrides = dict(params or {})
        self.override_origin = dict(param_origin or {})
        self.variant_choice = variant
        self.count = 0
        self.nodes: dict[str, Any] = {}
        self.redirects: dict[Path, tuple[Path, tuple[str, ...]]] = {}
        self.instances: list[Instance] = []
        self.node_instance: dict[str, Instance] = {}
        self._lines: list[str] | None = None
        self.reported: set[tuple] = set()
        self.blocks: dict[str, BlockSpec] = {}

    # ---------------------------------------------------------------------------------- errors
    def error(self, code: str, message: str, path: Path, hint: str | None = None, notes: tuple[str, ...] = (),
              *, key: bool = False, column: int | None = None) -> None:
        diagnostic = Diagnostic(code=code, message=message, path=tuple(path), hint=hint, notes=tuple(notes))
        diagnostic = self.source.locate(diagnostic, key=key)
        if column is not None and diagnostic.line is not None and diagnostic.col is not None:
            diagnostic = _shift(diagnostic, column, self._line(diagnostic.line))
        seen = (diagnostic.code, diagnostic.line, diagnostic.col, diagnostic.message)
        if seen in self.reported:
            return  # the same mistake in the definition, met again by another instance: once is enough
        self.reported.add(seen)
        self.sink.add(diagnostic)

    def _line(self, number: int) -> str:
        if self._lines is None:
            self._lines = self.source.text.splitlines()
        return self._lines[number - 1] if 0 < number <= len(self._lines) else ""

    def where(self, path: Path) -> str:
        pos = self.source.position(path, key=True)
        return f"{self.source.file or 'spec'}:{pos[0]}:{pos[1]}" if pos else (self.source.file or "spec")

    # ------------------------------------------------------------------------------ sections
    def run(self) -> tuple[dict, Expansion]:
        try:
            sections = _Sections.model_validate(self.data)
        except ValidationError as exc:
            _report(exc, self.data, self.sink)
            self.sink.raise_if_errors(ExpandError)
            raise AssertionError  # pragma: no cover
        self.blocks = sections.blocks or {}
        values, variant = self.model_params(sections)
        self.sink.raise_if_errors(ExpandError)
        self.check_block_cycles()
        self.sink.raise_if_errors(ExpandError)
        scope = dict(values)
        scope["variant"] = variant
        self.model_scope = scope
        out: dict[str, Any] = {}
        for key, value in self.data.items():
            if key in SECTIONS_1_1:
                continue
            if key in _UNEVALUATED or key == "outputs":
                out[key] = value
            else:
                out[key] = self.substitute(value, (key,), scope, ())
        self.bound_size()
        self.sink.raise_if_errors(ExpandError)
        top = _Frame(prefix="", scope=scope, def_path=("nodes",), notes=(), chain=(), instance=None)
        nodes = self.data.get("nodes")
        try:
            if isinstance(nodes, dict):
                previous: Any = None
                for local, raw in nodes.items():
                    previous = self.node(top, local, raw, previous)
                self.finish_frame(top)
                out["nodes"] = self.nodes
            outputs = self.data.get("outputs")
            if isinstance(outputs, (list, dict)):
                out["outputs"] = self.top_outputs(top, outputs)
        except (_TooLarge, _Abort):
            pass  # reported; the errors are raised just below
        self.sink.raise_if_errors(ExpandError)
        written = copy.deepcopy(self.data)
        self.write_effective_params(written, values, variant)
        self.write_explicit_inputs(written)
        return out, Expansion(written=written, params=values, variant=variant, instances=self.instances,
                              node_instance=self.node_instance)

    def model_params(self, sections: _Sections) -> tuple[dict[str, Any], str | None]:
        declared = sections.params or {}
        variants = sections.variants or {}
        variant = self.variant_choice if self.variant_choice is not None else sections.variant
        chosen: dict[str, Any] = {}
        if variant is not None:
            if variant not in variants:
                where = ("variant",) if self.variant_choice is None else None
                message = f"no variant named '{variant}'" + ("" if variants else " (the spec has no 'variants:')")
                hint = did_you_mean(variant, variants) or (f"variants: {', '.join(variants)}" if variants else None)
                if where is None:
                    self.sink.diagnostics.append(Diagnostic(code="unknown-variant", message=message, hint=hint,
                                                         file=f"variant={variant!r}"))
                else:
                    self.error("unknown-variant", message, where, hint)
            else:
                chosen = variants[variant]
        for name, values in variants.items():
            for param in values:
                if param not in declared:
                    self.error("unknown-parameter", f"variant '{name}' sets '{param}', which is not a parameter",
                               ("variants", name, param), did_you_mean(param, declared) or
                               "declare it under 'params:'", key=True)
        for param in self.overrides:
            if param not in declared:
                self.sink.diagnostics.append(Diagnostic(
                    code="unknown-parameter", message=f"the spec has no parameter '{param}'",
                    file=self.override_origin.get(param, f"params[{param!r}]"),
                    hint=did_you_mean(param, declared) or (f"parameters: {', '.join(declared)}" if declared
                                                           else "the spec declares no 'params:'")))
        values: dict[str, Any] = {}
        for name, decl in declared.items():
            decl = _implied(decl)
            if name in self.overrides:
                value, origin = self.overrides[name], ("override", name)
            elif name in chosen:
                value, origin = chosen[name], ("variants", variant, name)
            elif isinstance(decl, ParamSpec):
                if decl.required:
                    self.error("missing-parameter", f"model parameter '{name}' has no default and no value",
                               ("params", name), _param_hint(decl) or "give it a default", key=True)
                    continue
                value, origin = decl.default, ("params", name, "default")
            else:
                value, origin = decl, ("params", name)
            if isinstance(decl, ParamSpec):
                problem = check_param_value(decl, value)
                if problem is None:
                    value = _coerce(decl, value)
            else:
                problem = None
            if problem is not None:
                message = f"model parameter '{name}': {problem}"
                if origin[0] == "override":
                    self.sink.diagnostics.append(Diagnostic(code="bad-parameter", message=message, hint=_param_hint(decl),
                                             file=self.override_origin.get(name, f"params[{name!r}]")))
                else:
                    self.error("bad-parameter", message, origin, _param_hint(decl))
                continue
            values[name] = value
        return values, variant

    def write_explicit_inputs(self, written: dict) -> None:
        """Every node's default input written out, so that the canonical form (JSON with sorted keys) means
        the same as the spec: a node without ``input`` takes the node before it, and key order is lost there."""
        inputs = written.get("inputs")
        top_default = next(iter(inputs)) if isinstance(inputs, dict) and len(inputs) == 1 else None
        sections: list[tuple[Any, Any]] = [(written.get("nodes"), top_default)]
        blocks = written.get("blocks")
        if isinstance(blocks, dict):
            for block in blocks.values():
                if isinstance(block, dict):
                    names = block.get("inputs", ["x"])
                    first = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
                    sections.append((block.get("nodes"), first))
        for nodes, previous in sections:
            if not isinstance(nodes, dict):
                continue
            for local, node in nodes.items():
                if isinstance(node, dict) and node.get("input") is None and previous is not None:
                    node["input"] = previous
                previous = local

    def write_effective_params(self, written: dict, values: dict[str, Any], variant: str | None) -> None:
        params = written.get("params")
        if isinstance(params, dict):
            for name, value in values.items():
                if isinstance(params.get(name), dict) and "type" in params[name]:
                    params[name]["default"] = value
                else:
                    params[name] = value
        if variant is not None:
            written["variant"] = variant

    def check_block_cycles(self) -> None:
        """Literal block calls between blocks form no cycle (expression-chosen ones are checked while expanding)."""
        calls: dict[str, list[tuple[str, Path]]] = {}
        for name, block in self.blocks.items():
            for local, node in block.nodes.items():
                target = node.get("block") if isinstance(node, dict) else None
                if isinstance(target, str) and not expr.has_expression(target):
                    calls.setdefault(name, []).append((target, ("blocks", name, "nodes", local, "block")))
        state: dict[str, int] = {}
        reported: set[frozenset] = set()
        for start in self.blocks:
            if state.get(start):
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            trail: list[str] = [start]
            state[start] = 1
            while stack:
                name, index = stack[-1]
                edges = calls.get(name, [])
                if index >= len(edges):
                    stack.pop()
                    trail.pop()
                    state[name] = 2
                    continue
                stack[-1] = (name, index + 1)
                target, path = edges[index]
                if target not in self.blocks:
                    continue  # reported where it is expanded (with a did-you-mean)
                if state.get(target) == 1:
                    cycle = trail[trail.index(target):] + [target]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        self.error("block-cycle", f"blocks call each other in a cycle: {' -> '.join(cycle)}", path,
                                   "a block cannot contain itself, directly or through other blocks")
                    continue
                if state.get(target) == 2:
                    continue
                state[target] = 1
                stack.append((target, 0))
                trail.append(target)

    # ------------------------------------------------------------------------------ the bound
    def bound_size(self) -> None:
        """Count what the expansion would make, without making it, and refuse a spec past the cap.

        The count evaluates only what decides sizes (``when``, repeat counts, block names and arguments)
        and remembers the size of each block for each set of argument values, so a repeated node costs
        O(1) and a block repeated with the same arguments is counted once: a hostile spec (repeats of
        repeats) is refused after a few steps, before anything is expanded. Mistakes are left to the
        expansion, which reports them located."""
        self.memo: dict[str, int] = {}
        nodes = self.data.get("nodes")
        if not isinstance(nodes, dict):
            return
        try:
            self.count_frame(nodes, self.model_scope, ("nodes",), (), ())
        except _Over as over:
            notes = tuple(f"in block '{block}' called at {self.where(path)}" for block, path in reversed(over.calls))
            self.error("expansion-too-large", f"the spec expands to more than {MAX_EXPANDED_NODES:,} nodes and "
                       "block instances", over.path,
                       "lower the repeat counts or the nesting of blocks; no model needs this many nodes", notes)

    def quiet(self, value: Any, scope: dict[str, Any]) -> Any:
        if isinstance(value, str) and "${" in value:
            try:
                return expr.substitute(value, scope)
            except expr.ExprError:
                return _Bad
        return value

    def count_frame(self, nodes: dict, scope: dict[str, Any], def_path: Path, chain: tuple[str, ...],
                    calls: tuple[tuple[str, Path], ...]) -> int:
        total = 0
        for local, raw in nodes.items():
            total += self.count_node(raw, scope, def_path + (local,), chain, calls)
            if total > MAX_EXPANDED_NODES:
                raise _Over(def_path + (local,), calls)
        return total

    def count_node(self, raw: Any, scope: dict[str, Any], path: Path, chain: tuple[str, ...],
                   calls: tuple[tuple[str, Path], ...]) -> int:
        if not isinstance(raw, dict):
            return 1
        if "when" in raw and self.quiet(raw["when"], scope) is not True:
            return 0
        count = 1
        repeated = "repeat" in raw
        if repeated:
            spec = raw["repeat"]
            count = self.quiet(spec.get("count") if isinstance(spec, dict) else spec, scope)
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPEAT:
                return 0
        if "block" not in raw:
            return count
        where = path + ("repeat",) if repeated else path
        total = 0
        for i in range(count):
            inner_scope = dict(scope)
            if repeated:
                inner_scope["i"] = i
            target = self.quiet(raw["block"], inner_scope)
            block = self.blocks.get(target) if isinstance(target, str) else None
            if block is None or target in chain or len(chain) >= MAX_BLOCK_DEPTH:
                return total
            values: dict[str, Any] = {}
            for name, decl in block.params.items():
                value = self.quiet(raw[name], inner_scope) if name in raw else expr.OMIT
                values[name] = decl.default if value is expr.OMIT or value is _Bad else value
            try:
                key = target + "\0" + json.dumps(values, sort_keys=True, default=str)
            except (TypeError, ValueError):
                key = target + "\0" + repr(values)
            size = self.memo.get(key)
            if size is None:
                block_scope = dict(self.model_scope)
                block_scope.update(values)
                size = 1 + self.count_frame(block.nodes, block_scope, ("blocks", target, "nodes"), chain + (target,),
                                            calls + ((target, path),))
                self.memo[key] = size
            total += size
            if total > MAX_EXPANDED_NODES:
                raise _Over(where, calls)
        return total

    # ------------------------------------------------------------------------------ values
    def substitute(self, value: Any, path: Path, scope: dict[str, Any], notes: tuple[str, ...], *,
                   omit_ok: bool = False) -> Any:
        """``value`` with each ``${...}`` evaluated in ``scope``; problems are located at ``path``."""
        if isinstance(value, str):
            if "${" not in value:
                return value
            try:
                result = expr.substitute(value, scope, lambda name: _name_hint(name, scope))
            except expr.ExprError as error:
                self.error(error.code, error.message, path, error.hint, notes, column=error.column)
                return _Bad
            if result is expr.OMIT and not omit_ok:
                self.error("expression-type", "omit leaves out a mapping key; it cannot stand here", path,
                           "use omit as the whole value of a node's argument", notes)
                return _Bad
            return result
        if isinstance(value, dict):
            result = {}
            for k, v in value.items():
                item = self.substitute(v, path + (k,), scope, notes, omit_ok=True)
                if item is not expr.OMIT:
                    result[k] = item
            return result
        if isinstance(value, list):
            return [self.substitute(v, path + (i,), scope, notes) for i, v in enumerate(value)]
        return value

    def tick(self, path: Path, notes: tuple[str, ...]) -> None:
        self.count += 1
        if self.count > MAX_EXPANDED_NODES:
            self.error("expansion-too-large", f"the spec expands to more than {MAX_EXPANDED_NODES:,} nodes "
                       "and block instances", path,
                       "lower the repeat counts or the nesting of blocks; no model needs this many nodes", notes)
            raise _TooLarge

    # ------------------------------------------------------------------------------- nodes
    def node(self, frame: _Frame, local: str, raw: Any, previous: Any) -> Any:
        """Expand one node of a frame; returns the reference the next node takes by default."""
        path = frame.def_path + (local,)
        if not isinstance(raw, dict):
            # Not a mapping: the schema stage says so, at the same place.
            name = frame.prefix + str(local)
            self.add_node(frame, local, name, raw, path, frame.notes)
            return ("flat", name)
        if "when" in raw:
            cond = self.substitute(raw["when"], path + ("when",), frame.scope, frame.notes)
            if cond is _Bad:
                return previous
            if not isinstance(cond, bool):
                self.error("bad-condition", f"'when' must be true or false, got {_show(cond)}", path + ("when",),
                           "write a comparison, e.g. when: ${strides != 1}", frame.notes)
                return previous
            if not cond:
                through = self.pass_through(frame, raw, previous, path)
                frame.aliases[local] = through
                return through
        if "repeat" in raw:
            return self.repeat(frame, local, raw, path, previous)
        if "block" in raw:
            return self.block_call(frame, local, frame.prefix + local, raw, path, previous, frame.scope,
                                   frame.notes)
        name = frame.prefix + local
        self.plain(frame, local, name, raw, path, previous, frame.scope, frame.notes, redirect=bool(frame.prefix))
        return ("flat", name)

    def pass_through(self, frame: _Frame, raw: dict, previous: Any, path: Path) -> Any:
        given = raw.get("input")
        if given is None:
            return previous
        given = self.substitute(given, path + ("input",), frame.scope, frame.notes)  # an input chosen by a parameter
        if given is _Bad:
            return previous  # reported
        if isinstance(given, str):
            return ("ref", given, frame)
        return None

    def plain(self, frame: _Frame, local: str, name: str, raw: dict, path: Path, previous: Any,
              scope: dict[str, Any], notes: tuple[str, ...], *, redirect: bool) -> None:
        self.tick(path, notes)
        node: dict[str, Any] = {}
        for key, value in raw.items():
            if key in ("when", "repeat"):
                continue
            item = self.substitute(value, path + (key,), scope, notes, omit_ok=key != "input")
            if item is not expr.OMIT:
                node[key] = item
        if "input" not in node or node["input"] is None:
            if previous is not None:
                node["input"] = previous
                frame.pending.append((node, "input", previous, path, name))
            elif frame.prefix:
                self.error("missing-input", f"node '{local}' of block '{frame.block_name}' has no input",
                           path, "give it 'input:' (one of the block's inputs or nodes)", notes, key=True)
        else:
            self.defer_refs(frame, node, "input", node["input"], path + ("input",), name)
        self.add_node(frame, local, name, node, path if redirect else None, notes)

    def add_node(self, frame: _Frame, local: str, name: str, node: Any, path: Path | None,
                 notes: tuple[str, ...]) -> None:
        if name in self.nodes:
            self.error("duplicate-name", f"the expanded node name '{name}' is made twice", path or ("nodes", name),
                       "give the block instances or repeat iterations distinct names", notes, key=True)
            frame.local.add(local)
            return
        self.nodes[name] = node
        frame.local.add(local)
        if path is not None and path != ("nodes", name):
            self.redirects[("nodes", name)] = (path, notes)
        if frame.instance is not None:
            frame.instance.nodes.append(name)
            self.node_instance[name] = frame.instance

    def defer_refs(self, frame: _Frame, container: Any, key: Any, value: Any, path: Path, name: str) -> None:
        if isinstance(value, str):
            frame.pending.append((container, key, value, path, name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.defer_refs(frame, value, i, item, path + (i,), name)
        elif isinstance(value, dict):
            for k, item in value.items():
                self.defer_refs(frame, value, k, item, path + (k,), name)

    def repeat(self, frame: _Frame, local: str, raw: dict, path: Path, previous: Any) -> Any:
        spec = raw["repeat"]
        rpath = path + ("repeat",)
        if isinstance(spec, dict):
            try:
                parsed = RepeatSpec.model_validate(spec)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                loc = tuple(p for p in first["loc"] if p in spec)
                hint = "write repeat: N, or repeat: {count: N, name: \"block${i + 1}\"}"
                if first["type"] == "extra_forbidden" and loc:
                    message = f"unknown key '{loc[-1]}' in repeat"
                    hint = did_you_mean(str(loc[-1]), ("count", "name")) or hint
                elif first["type"] == "missing":
                    message = "repeat needs 'count'"
                else:
                    message = f"repeat: {first['msg']}"
                self.error("bad-repeat", message, rpath + loc, hint, frame.notes, key=first["type"] == "extra_forbidden")
                return previous
            count_raw, template = parsed.count, parsed.name
            cpath = rpath + ("count",)
        else:
            count_raw, template, cpath = spec, None, rpath
        count = self.substitute(count_raw, cpath, frame.scope, frame.notes)
        if count is _Bad:
            return previous
        if isinstance(count, bool) or not isinstance(count, int):
            self.error("bad-repeat", f"a repeat count is an int, got {_show(count)}", cpath,
                       "e.g. repeat: 3 or repeat: ${depths[0]}", frame.notes)
            return previous
        if not 0 <= count <= MAX_REPEAT:
            self.error("bad-repeat" if count < 0 else "expansion-too-large",
                       f"repeat count {count:,} is out of range (0 to {MAX_REPEAT:,})", cpath,
                       None, frame.notes)
            return previous
        body = {k: v for k, v in raw.items() if k != "repeat"}
        if "block" in body:
            target = body["block"]
            block = self.blocks.get(target) if isinstance(target, str) else None
            if block is not None and (len(block.inputs) != 1 and count > 1):
                self.error("repeat-not-chainable", f"block '{target}' has {len(block.inputs)} inputs: "
                           "a repeat chains each iteration into the next's one input", rpath,
                           "repeat a block with one input, or write the calls out", frame.notes)
                return previous
        current = previous
        for i in range(count):
            scope = dict(frame.scope)
            scope["i"] = i
            if template is None:
                name_local = f"{local}_{i}"
            else:
                name_local = self.substitute(template, rpath + ("name",), scope, frame.notes)
                if name_local is _Bad:
                    return current
                if not isinstance(name_local, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,128}", name_local):
                    self.error("bad-repeat", f"repeat name {_show(name_local)} is not a name", rpath + ("name",),
                               "names use letters, digits and '_', e.g. name: \"block${i + 1}\"", frame.notes)
                    return current
            note = f"in iteration i={i} of '{local}' repeated at {self.where(rpath)}"
            notes = (note,) + frame.notes
            iteration = dict(body)
            if i > 0:
                iteration["input"] = None  # chained: the previous iteration's output
            if "block" in iteration:
                current = self.block_call(frame, name_local, frame.prefix + name_local, iteration, path,
                                          current if i > 0 else previous, scope, frame.notes,
                                          iteration_note=f"i={i}")
            else:
                name = frame.prefix + name_local
                if i > 0:
                    iteration.pop("input", None)
                self.plain(frame, name_local, name, iteration, path, current if i > 0 else previous, scope, notes,
                           redirect=True)
                current = ("flat", name)
        frame.aliases[local] = current
        return current

    def block_call(self, frame: _Frame, local: str, name: str, raw: dict, path: Path, previous: Any,
                   scope: dict[str, Any], notes: tuple[str, ...], iteration_note: str | None = None) -> Any:
        target = self.substitute(raw.get("block"), path + ("block",), scope, notes)
        if target is _Bad:
            return previous
        if not isinstance(target, str) or target not in self.blocks:
            self.error("unknown-block", f"no block named {_show(target)}", path + ("block",),
                       did_you_mean(str(target), self.blocks) or
                       (f"blocks: {', '.join(self.blocks)}" if self.blocks else "declare it under 'blocks:'"), notes)
            return previous
        if target in frame.chain:
            chain = " -> ".join(frame.chain[frame.chain.index(target):] + (target,))
            self.error("block-cycle", f"blocks call each other in a cycle: {chain}", path + ("block",),
                       "a block cannot contain itself, directly or through other blocks", notes)
            raise _Abort
        if len(frame.chain) >= MAX_BLOCK_DEPTH:
            self.error("expansion-too-large", f"blocks nested more than {MAX_BLOCK_DEPTH} deep", path + ("block",),
                       None, notes)
            raise _Abort
        block = self.blocks[target]
        bpath = ("blocks", target)
        self.tick(path, notes)
        # Arguments: checked like a layer's (did-you-mean), typed like parameters (doc in the hint).
        args: dict[str, Any] = {}
        omitted: set[str] = set()
        ok = True
        for key, value in raw.items():
            if key in RESERVED_BLOCK_CALL_KEYS:
                continue
            if key not in block.params:
                self.error("unknown-argument", f"block '{target}' has no parameter '{key}'", path + (key,),
                           did_you_mean(key, list(block.params) + list(RESERVED_BLOCK_CALL_KEYS)) or
                           (f"parameters of '{target}': {', '.join(block.params)}" if block.params
                            else f"block '{target}' takes no parameters"), notes, key=True)
                ok = False
                continue
            evaluated = self.substitute(value, path + (key,), scope, notes, omit_ok=True)
            if evaluated is _Bad:
                ok = False
                continue
            if evaluated is expr.OMIT:
                omitted.add(key)
                continue  # the parameter's default
            problem = check_param_value(block.params[key], evaluated)
            if problem is not None:
                self.error("bad-argument", f"block '{target}' parameter '{key}': {problem}", path + (key,),
                           _param_hint(block.params[key]), notes)
                ok = False
                continue
            args[key] = _coerce(block.params[key], evaluated)
        for pname, decl in block.params.items():
            if decl.required and (pname not in raw or pname in omitted):
                self.error("missing-argument", f"block '{target}' needs parameter '{pname}'", path,
                           _param_hint(decl), notes, key=True)
                ok = False
        if not ok:
            return previous
        # Inputs: a reference (one input), a list in the block's order, or {input_name: ref}.
        given = raw.get("input")
        given = self.substitute(given, path + ("input",), scope, notes) if given is not None else None
        bindings: dict[str, Any] = {}
        if given is None:
            if len(block.inputs) != 1:
                self.error("missing-input", f"block '{target}' has inputs {', '.join(block.inputs)}: give them in "
                           "'input:'", path, f"input: {{{', '.join(f'{n}: ...' for n in block.inputs)}}}", notes,
                           key=True)
                return previous
            model_inputs = self.data.get("inputs")
            if previous is None and not frame.prefix and isinstance(model_inputs, dict) and len(model_inputs) == 1:
                previous = ("flat", next(iter(model_inputs)))  # the first node takes the model's only input
            if previous is None:
                self.error("missing-input", f"node '{local}' is the first node and does not say its input", path,
                           "add 'input:'", notes, key=True)
                return previous
            bindings[block.inputs[0]] = previous
        elif isinstance(given, str):
            if len(block.inputs) != 1:
                self.error("bad-input", f"block '{target}' has {len(block.inputs)} inputs ({', '.join(block.inputs)})",
                           path + ("input",), "give a list in that order, or a mapping by input name", notes)
                return previous
            bindings[block.inputs[0]] = ("ref", given, frame)
        elif isinstance(given, list):
            if len(given) != len(block.inputs):
                self.error("bad-input", f"block '{target}' has {len(block.inputs)} inputs ({', '.join(block.inputs)}), "
                           f"'input' gives {len(given)}", path + ("input",), None, notes)
                return previous
            for n, ref in zip(block.inputs, given):
                bindings[n] = ("ref", ref, frame)
        elif isinstance(given, dict):
            for n in given:
                if n not in block.inputs:
                    self.error("bad-input", f"block '{target}' has no input '{n}'", path + ("input", n),
                               did_you_mean(str(n), block.inputs) or f"inputs: {', '.join(block.inputs)}", notes,
                               key=True)
                    return previous
            missing = [n for n in block.inputs if n not in given]
            if missing:
                self.error("missing-input", f"block '{target}' input '{missing[0]}' is not given", path + ("input",),
                           None, notes)
                return previous
            for n in block.inputs:
                bindings[n] = ("ref", given[n], frame)
        else:
            self.error("bad-input", "a block's 'input' is a reference, a list or a mapping", path + ("input",),
                       None, notes)
            return previous
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        note = f"in block '{target}' called at {self.where(path)}" + (f" ({iteration_note})" if iteration_note else "") \
            + (f" with {shown}" if shown else "")
        instance = Instance(name=name, block=target, args=args, parent=frame.instance, call_path=path)
        self.instances.append(instance)
        inner_scope = dict(self.model_scope)
        for pname, decl in block.params.items():
            inner_scope[pname] = args[pname] if pname in args else _coerce(decl, decl.default)
        inner = _Frame(prefix=name + "_", scope=inner_scope, def_path=bpath + ("nodes",), notes=(note,) + notes,
                       chain=frame.chain + (target,), instance=instance, block_inputs=tuple(block.inputs),
                       block_name=target)
        for n, bound in bindings.items():
            inner.aliases[n] = bound
        current: Any = bindings[block.inputs[0]]
        for node_local, node_raw in block.nodes.items():
            if node_local in block.inputs:
                self.error("duplicate-name", f"block '{target}' has an input and a node named '{node_local}'",
                           bpath + ("nodes", node_local), None, inner.notes, key=True)
                return previous
            current = self.node(inner, node_local, node_raw, current)
        outputs = []
        for i, out in enumerate(block.outputs):
            opath = bpath + ("outputs", i)
            out = self.substitute(out, opath, inner.scope, inner.notes)  # an output chosen by a parameter
            if out is not _Bad and not (isinstance(out, str) and _REF.match(out)):
                self.error("bad-reference", f"block '{target}' output is {_show(out)}, not a node name", opath,
                           "an output expression gives the name of a node or input of the block, e.g. "
                           "${'add' if residual else 'project_bn'}", inner.notes)
                out = _Bad
            outputs.append(self.lookup(inner, out, opath, f"block '{target}' output"))
        self.finish_frame(inner)
        frame.aliases[local] = outputs
        return ("flat", outputs[0]) if outputs and outputs[0] is not None else None

    # ---------------------------------------------------------------------------- references
    def lookup(self, frame: _Frame, raw: Any, path: Path, what: str, seen: tuple = ()) -> Any:
        """The flat reference text for a reference written in ``frame`` (None after reporting a problem).

        ``seen``: the (frame, name) aliases followed so far, so that left-out nodes passing on each other
        (``a: {when: false, input: a}``) are a located error, not an endless recursion."""
        if isinstance(raw, tuple):  # ("ref", text, frame) written in another frame, or ("flat", name)
            if raw[0] == "ref":
                return self.lookup(raw[2], raw[1], path, what, seen)
            return raw[1]
        if raw is None or raw is _Bad:
            return None
        if not isinstance(raw, str):
            return raw  # the schema stage reports it
        match = _REF.match(raw)
        if match is None:
            return raw
        base, index = match.group(1), match.group(2)
        if base in frame.aliases:
            target = frame.aliases[base]
            if isinstance(target, list):  # an instance's outputs
                k = int(index) if index is not None else 0
                if k >= len(target):
                    self.error("bad-reference", f"{what} refers to '{raw}': the block instance has {len(target)} "
                               f"output{'s' if len(target) != 1 else ''}", path, None, frame.notes)
                    return None
                return target[k]
            if target is None:
                self.error("unknown-reference", f"{what} refers to '{base}', which does not exist here (its "
                           "'when:' is false, or its repeat count is 0) and has no single input to stand for it",
                           path, None, frame.notes)
                return None
            if isinstance(target, tuple):
                key = (id(frame), base)
                if key in seen:
                    chain = " -> ".join([name for _, name in seen[seen.index(key):]] + [base])
                    self.error("cycle", f"{what} refers to '{base}', which stands for itself: nodes left out by "
                               f"'when:' pass each other on ({chain})", path,
                               "give a left-out node an input that is not itself", frame.notes)
                    return None
                resolved = self.lookup(frame, target, path, what, seen + (key,))
            else:
                resolved = target
            if resolved is None:
                return None
            return resolved if index is None else f"{resolved}[{index}]"
        if base in frame.local:
            return frame.prefix + raw
        if frame.prefix:
            known = list(frame.block_inputs) + sorted(frame.local)
            self.error("unknown-reference", f"{what} refers to '{base}', which is neither an input nor a node of "
                       f"block '{frame.block_name}'", path,
                       did_you_mean(base, known) or f"known names: {', '.join(known[:12])}", frame.notes)
            return None
        return raw  # the top level: resolve reports unknown names as in language 1.0

    def finish_frame(self, frame: _Frame) -> None:
        for container, key, raw, path, name in frame.pending:
            resolved = self.lookup(frame, raw, path, f"node '{name}'")
            container[key] = resolved if resolved is not None else raw if isinstance(raw, str) else None
        frame.pending.clear()

    def top_outputs(self, frame: _Frame, outputs: Any) -> Any:
        if isinstance(outputs, list):
            result = []
            for i, ref in enumerate(outputs):
                resolved = self.lookup(frame, ref, ("outputs", i), "output")
                if isinstance(ref, str) and resolved != ref and isinstance(resolved, str):
                    # list-form outputs are named after what they refer to: keep the written name
                    self.error("bad-output", f"output '{ref}' is a block instance or a repeated node; name it "
                               f"in the mapping form", ("outputs", i),
                               f"outputs: {{{ref}: {ref}}} names the output '{ref}' (it is '{resolved}' inside)")
                result.append(resolved if resolved is not None else ref)
            return result
        return {k: (self.lookup(frame, v, ("outputs", k), f"output '{k}'") or v) for k, v in outputs.items()}


class _BadValue:
    def __repr__(self) -> str:
        return "<bad expression>"


_Bad = _BadValue()


def _shift(diagnostic: Diagnostic, column: int, line: str) -> Diagnostic:
    """Point inside a one-line scalar: ``column`` characters into its text (past an opening quote)."""
    from dataclasses import replace

    start = (diagnostic.col or 1) - 1
    quoted = start < len(line) and line[start] in "'\""
    col = diagnostic.col + column + (1 if quoted else 0)
    if col - 1 > len(line):
        return diagnostic
    return replace(diagnostic, col=col)


def _param_hint(decl: Any) -> str | None:
    if not isinstance(decl, ParamSpec):
        return None
    kind = decl.type if decl.type != "choice" else f"one of {', '.join(_show(c) for c in decl.choices or [])}"
    text = f"{kind}" + (f": {decl.doc}" if decl.doc else "")
    if decl.min is not None or decl.max is not None:
        text += f" (from {decl.min if decl.min is not None else '-inf'} to {decl.max if decl.max is not None else 'inf'})"
    return text


def _name_hint(name: str, scope: dict[str, Any]) -> str:
    hint = did_you_mean(name, [k for k in scope])
    return hint or f"names here: {', '.join(sorted(k for k in scope)[:20]) or 'none'}"


def _implied(decl: Any) -> Any:
    """A bare model parameter value as a declaration of its own type (an override is checked against it)."""
    if isinstance(decl, ParamSpec):
        return decl
    kind = "bool" if isinstance(decl, bool) else "int" if isinstance(decl, int) else "float" \
        if isinstance(decl, float) else "string" if isinstance(decl, str) else "list" if isinstance(decl, list) \
        else None
    if kind is None:
        return decl
    return ParamSpec(type=kind, default=decl)


def check_param_value(decl: ParamSpec, value: Any) -> str | None:
    """What is wrong with ``value`` for a parameter (None: nothing)."""
    kind = decl.type
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "string": isinstance(value, str),
        "list": isinstance(value, list),
        "choice": True,
    }[kind]
    if not ok:
        return f"expected {'a' if kind != 'int' else 'an'} {kind}, got {_show(value)}"
    if kind == "choice":
        if not any(type(value) is type(c) and value == c for c in decl.choices or []):
            return f"{_show(value)} is not one of {', '.join(_show(c) for c in decl.choices or [])}"
    if decl.min is not None and value < decl.min:
        return f"{_show(value)} is below the minimum {decl.min}"
    if decl.max is not None and value > decl.max:
        return f"{_show(value)} is above the maximum {decl.max}"
    return None


def _coerce(decl: ParamSpec, value: Any) -> Any:
    if decl.type == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def spec_sections(path) -> _Sections:
    """The validated 1.1 sections (blocks, params, variants) of a spec file, for ``graphspec schema --spec``."""
    from graphspec.loader import load

    loaded = load(path)
    if not isinstance(loaded.data, dict):
        return _Sections()
    try:
        return _Sections.model_validate(loaded.data)
    except ValidationError as exc:
        sink = DiagnosticSink(source=loaded.source)
        _report(exc, loaded.data, sink)
        raise ExpandError(sink.sorted()) from None


def _report(error: ValidationError, data: Any, sink: DiagnosticSink) -> None:
    """The 1.1 sections' validation errors, worded and located as the schema stage words its own."""
    from graphspec.schema import translate_errors

    diagnostics, at_key = translate_errors(error.errors(include_url=False), data)
    for diagnostic in diagnostics.values():
        sink.add(diagnostic, key=diagnostic.path in at_key or diagnostic.code == "unknown-key")


def expand(loaded: LoadedSpec, *, params: dict[str, Any] | None = None, variant: str | None = None,
           param_origin: dict[str, str] | None = None) -> LoadedSpec:
    """The loaded spec with blocks, repeat, ``when`` and parameters expanded (language 1.0 data).

    ``params`` overrides model parameters (``--set params.width=96``; ``param_origin`` names the option of
    each, for diagnostics), ``variant`` chooses a variant. A spec with no 1.1 key and no override is returned
    as it is. Raises :class:`ExpandError` with every problem found.
    """
    if not needs_expansion(loaded.data):
        if variant is not None or params:
            sink = DiagnosticSink()
            if variant is not None:
                sink.add(Diagnostic(code="unknown-variant", message=f"no variant named '{variant}' (the spec has "
                                    "no 'variants:')", file=f"variant={variant!r}"))
            for name in params or {}:
                sink.add(Diagnostic(code="unknown-parameter", message=f"the spec has no parameter '{name}'",
                                    file=(param_origin or {}).get(name, f"params[{name!r}]"),
                                    hint="the spec declares no 'params:'"))
            raise ExpandError(sink.diagnostics)
        return loaded
    with suggestion_budget():
        expander = Expander(loaded, params, variant, param_origin)
        data, expansion = expander.run()
    source = SourceMap(file=loaded.source.file, text=loaded.source.text, values=loaded.source.values,
                       keys=loaded.source.keys, redirects=expander.redirects, expansion=expansion)
    return LoadedSpec(data=data, source=source)
