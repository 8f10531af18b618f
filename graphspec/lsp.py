"""``graphspec lsp``: a Language Server for spec files (pygls; the ``lsp`` extra).

- **Diagnostics** as the user types: every diagnostic ``check`` reports (YAML, schema, references,
  cycles, block arguments, shapes, dtypes, ``expect:``), with its hint and notes, and the warnings of a
  spec that checks. The pure-Python stages only: the server never imports TensorFlow.
- **Hover** on a node, input or output name (where it is defined or referenced): the layer type,
  the inferred output shape and the parameters; on a block instance, its block, arguments and total.
- **Completion** of references (node and input names after ``input:``; shared layers after ``shared:``),
  of layer types (``type:``) and ``op:`` functions, of a layer's arguments (at a key inside a node), and
  of argument values (activations, initializers, regularizers, constraints, losses, optimizers, metrics).

The logic is plain functions (:func:`diagnostics`, :func:`hover`, :func:`completions`) over the text;
:func:`server` wires them to LSP messages. The last spec that checked is kept per document, so hover
and completion still work while the text being typed does not parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.infer.tensor import outputs_text

__all__ = ["Document", "diagnostics", "hover", "completions", "server", "main"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECTION_KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")

VALUE_NAMESPACES = {"loss": "losses", "optimizer": "optimizers", "metrics": "metrics", "metric": "metrics"}


@dataclass
class Document:
    """One open spec: its text, where it lives, and what the last check found."""

    uri: str
    text: str = ""
    checked: Any = None
    """The last :class:`graphspec.pipeline.CheckedSpec` that passed (kept while later text fails)."""
    data: Any = None
    """The last loaded data (kept while later text does not parse)."""
    problems: list[Diagnostic] = field(default_factory=list)
    plugins: tuple = ()
    """The plugins the server was started with (``graphspec lsp --plugin NAME``), enabled while checking."""

    @property
    def path(self) -> Path | None:
        parsed = urlparse(self.uri)
        return Path(unquote(parsed.path)) if parsed.scheme in ("file", "") and parsed.path else None

    def update(self, text: str) -> list[Diagnostic]:
        """Check ``text``; returns (and keeps) its diagnostics, errors and warnings."""
        from graphspec.loader import loads
        from graphspec.pipeline import check_loaded
        from graphspec.plugins import using

        self.text = text
        path = self.path
        file = path.name if path is not None else "spec.yaml"
        try:
            loaded = loads(text, file=file)
            self.data = loaded.data
            with using(self.plugins):
                checked = check_loaded(loaded, path)
        except GraphspecError as error:
            self.problems = [d for d in error.diagnostics if d.file in (None, file)]
            return self.problems
        self.checked = checked
        self.problems = [d for d in checked.warnings if d.file in (None, file)]
        return self.problems


def _token_end(lines: list[str], line: int, col: int) -> int:
    """The column just past the token that starts at (line, col), 0-based."""
    if not 0 <= line < len(lines):
        return col + 1
    text = lines[line]
    end = col
    while end < len(text) and text[end] not in " \t,{}[]#":
        end += 1
    return max(end, col + 1)


def diagnostics(doc: Document) -> list[dict]:
    """The document's diagnostics as LSP ``Diagnostic`` objects (plain dicts): 0-based ranges."""
    lines = doc.text.splitlines()
    out = []
    for d in doc.problems:
        line = (d.line or 1) - 1
        col = (d.col or 1) - 1
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "") + "".join(f"\nnote: {n}" for n in d.notes)
        out.append({"range": {"start": {"line": line, "character": col},
                              "end": {"line": line, "character": _token_end(lines, line, col)}},
                    "severity": 1 if d.severity == "error" else 2, "code": d.code, "source": "graphspec",
                    "message": message})
    return out


def _word_at(text: str, line: int, character: int) -> str | None:
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return None
    for match in _WORD.finditer(lines[line]):
        if match.start() <= character <= match.end():
            return match.group()
    return None


def hover(doc: Document, line: int, character: int) -> str | None:
    """Markdown for the name under the cursor (0-based position), from the last spec that checked."""
    word = _word_at(doc.text, line, character)
    checked = doc.checked
    if word is None or checked is None:
        return None
    graph, inferred = checked.graph, checked.inferred
    if word in graph.nodes:
        node, info = graph.nodes[word], inferred.nodes[word]
        kind = {"layer": node.layer_type, "shared": f"{node.layer_type} (shared layer '{node.layer_name}')",
                "sequential": "Sequential", "model": "saved model",
                "op": f"op {getattr(node.spec, 'op', '')}"}.get(node.kind) or "?"
        if info.params is None:
            params = "? (Keras counts them at build)"
        elif not info.counted:
            params = f"{info.params + (info.non_trainable_params or 0):,} (shared: counted at the first call)"
        else:
            params = f"{info.params + (info.non_trainable_params or 0):,}"
            if info.non_trainable_params:
                params += f" ({info.non_trainable_params:,} non-trainable)"
        inputs = ", ".join(str(r) for r in node.input_refs())
        return (f"**{word}**: `{kind}`\n\n- output shape: `{outputs_text(info.outputs)}`\n- params: {params}\n"
                f"- input: {inputs}")
    if word in inferred.inputs:
        return f"**{word}**: model input\n\n- shape: `{outputs_text(inferred.inputs[word])}`"
    if word in graph.outputs:
        return f"**{word}**: model output (`{graph.outputs[word]}`)\n\n- shape: `{outputs_text(inferred.outputs.get(word))}`"
    expansion = getattr(graph.source, "expansion", None)
    if expansion is not None:
        for instance in expansion.instances:
            if instance.name == word:
                members = [n for n, i in expansion.node_instance.items() if _within(i, instance)]
                total: int | None = 0
                for n in members:
                    info = inferred.nodes.get(n)
                    if info is None or info.params is None:
                        total = None
                        break
                    total += (info.params + (info.non_trainable_params or 0)) if info.counted else 0
                last = members[-1] if members else None
                shape = outputs_text(inferred.nodes[last].outputs) if last in inferred.nodes else "?"
                return (f"**{instance.label()}**\n\n- {len(members)} nodes\n- params: "
                        f"{'?' if total is None else f'{total:,}'}\n- last node: `{last}` `{shape}`")
    return None


def _within(instance, outer) -> bool:
    while instance is not None:
        if instance is outer:
            return True
        instance = instance.parent
    return False


def _names(doc: Document, section: str) -> list[str]:
    """Names defined in a top-level section (from the last loaded data, else from the text)."""
    data = doc.data
    if isinstance(data, dict) and isinstance(data.get(section), dict):
        names = list(data[section])
    else:
        names = []
    # what is being typed now may not parse: add the section's keys read from the text
    inside = False
    for text in doc.text.splitlines():
        match = _SECTION_KEY.match(text)
        if match and not match.group(1):
            inside = match.group(2) == section
            continue
        if inside and match and len(match.group(1)) == 2 and match.group(2) not in names:
            names.append(match.group(2))
    return names


def _layer_type_around(lines: list[str], line: int, prefix: str) -> str | None:
    """The ``type:`` of the node mapping the cursor is in: on this line (flow form), or a sibling key."""
    match = re.search(r"\btype:\s*([A-Za-z_][A-Za-z0-9_]*)", prefix) or \
        re.search(r"\btype:\s*([A-Za-z_][A-Za-z0-9_]*)", lines[line] if line < len(lines) else "")
    if match:
        return match.group(1)
    indent = len(prefix) - len(prefix.lstrip())
    for step in (-1, 1):
        k = line + step
        while 0 <= k < len(lines):
            text = lines[k]
            if text.strip() and not text.lstrip().startswith("#"):
                own = len(text) - len(text.lstrip())
                if own < indent:
                    break
                m = re.match(r"\s*type:\s*([A-Za-z_][A-Za-z0-9_]*)", text)
                if own == indent and m:
                    return m.group(1)
            k += step
    return None


def completions(doc: Document, line: int, character: int) -> list[dict]:
    """Completion items (``label``, ``kind``, ``detail``) for the 0-based position."""
    from graphspec.catalogue import catalogue, nested_namespace

    cat = catalogue()
    lines = doc.text.splitlines()
    current = lines[line] if 0 <= line < len(lines) else ""
    prefix = current[:character]

    def items(names, kind: int, detail: str) -> list[dict]:
        seen, out = set(), []
        for name in names:
            if name not in seen:
                seen.add(name)
                out.append({"label": name, "kind": kind, "detail": detail})
        return out

    # a value after 'key:' (possibly inside [..] for lists of references)
    value = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(\[[^\]]*)?([A-Za-z0-9_\[\]]*)$", prefix)
    if value:
        key = value.group(1)
        if key == "input":
            here = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*:", current)
            own = here.group(1) if here else None
            refs = [n for n in _names(doc, "inputs") + _names(doc, "nodes") if n != own]
            return items(refs, 18, "reference (input or node)")
        if key == "shared":
            return items(_names(doc, "layers"), 18, "shared layer")
        if key == "type":
            return items(cat.layer_names, 7, "Keras layer")
        if key == "op":
            return items(cat.op_names, 3, "keras.ops function")
        if key == "block":
            return items(_names(doc, "blocks"), 7, "block")
        if key == "dtype":
            return items(cat.dtypes, 12, "dtype")
        namespace = nested_namespace(key) or VALUE_NAMESPACES.get(key)
        if namespace is not None:
            return items(cat.object_names(namespace), 12, f"keras.{namespace}")
    # a key inside a node mapping: the layer's constructor arguments (and the node keys)
    at_key = re.search(r"(^\s*|[{,]\s*)([A-Za-z_][A-Za-z0-9_]*)?$", prefix)
    if at_key:
        layer_type = _layer_type_around(lines, line, prefix)
        entry = cat.layer(layer_type) if layer_type else None
        if entry is not None:
            args = [a for a in entry.get("args", {}) if a not in ("name",)]
            out = items(args, 5, f"{layer_type} argument")
            for item in out:
                meta = entry["args"].get(item["label"], {})
                item["detail"] = f"{layer_type}: " + ("required" if meta.get("required") else
                                                      f"default {meta.get('default')!r}")
            return out + items(["input", "repeat", "when"], 14, "node key")
    return []


def server(plugins: tuple = ()):
    """The pygls server (imported here: the ``lsp`` extra); ``plugins`` are enabled for every document."""
    try:
        from lsprotocol import types as lsp
        from pygls.lsp.server import LanguageServer
    except ImportError:
        raise GraphspecError([Diagnostic(code="missing-extra", message="graphspec lsp needs pygls",
                                         hint="pip install 'graphspec[lsp]'")]) from None
    from graphspec.plugins import using

    ls = LanguageServer("graphspec", "1")
    docs: dict[str, Document] = {}

    def publish(uri: str, version: int | None) -> None:
        doc = docs[uri]
        found = []
        for d in diagnostics(doc):
            r = d["range"]
            found.append(lsp.Diagnostic(
                range=lsp.Range(lsp.Position(**r["start"]), lsp.Position(**r["end"])),
                message=d["message"], severity=lsp.DiagnosticSeverity(d["severity"]), code=d["code"],
                source="graphspec"))
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=found, version=version))

    def refresh(uri: str, version: int | None) -> None:
        text = ls.workspace.get_text_document(uri).source
        docs.setdefault(uri, Document(uri, plugins=plugins)).update(text)
        publish(uri, version)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        refresh(params.text_document.uri, params.text_document.version)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        refresh(params.text_document.uri, params.text_document.version)

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        docs.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @ls.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(params: lsp.HoverParams):
        doc = docs.get(params.text_document.uri)
        with using(plugins):
            text = hover(doc, params.position.line, params.position.character) if doc else None
        if text is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text))

    @ls.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[":", " ", "[", ",", "{"]))
    def on_completion(params: lsp.CompletionParams):
        doc = docs.get(params.text_document.uri)
        if doc is None:
            return lsp.CompletionList(is_incomplete=False, items=[])
        doc.text = ls.workspace.get_text_document(params.text_document.uri).source
        with using(plugins):
            found = completions(doc, params.position.line, params.position.character)
        return lsp.CompletionList(is_incomplete=False, items=[
            lsp.CompletionItem(label=i["label"], kind=lsp.CompletionItemKind(i["kind"]), detail=i["detail"])
            for i in found])

    return ls


def main(plugins: tuple = ()) -> None:
    """Serve over stdio (what editors start), with ``plugins`` (loaded :class:`graphspec.plugins.Plugin`) enabled."""
    server(tuple(plugins)).start_io()
