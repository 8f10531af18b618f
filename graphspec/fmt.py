"""``graphspec fmt``: one canonical layout for a spec, comments kept, meaning never changed.

The layout (docs/fmt.md):

* top-level sections in one order (``graphspec``, ``name``, ``variant``, ``description``, ``plugins``,
  ``params``, ``variants``, ``blocks``, ``inputs``, ``layers``, ``nodes``, ``outputs``, ``compile``,
  ``train``, ``expect``; anything else after them, as written);
* each entry of ``inputs``/``layers``/``nodes``/``params``/``variants`` (and a block's ``params`` and
  ``nodes``) on one line in flow style, its keys in one order: the form key (``type``, ``shared``,
  ``sequential``, ``model``, ``block``, ``op``) first, then the arguments (a Keras layer's in its
  constructor's order, then the base layer's; others as written), then ``input``, ``repeat``, ``when``;
* any other object with a ``type`` (an optimizer, a nested layer) has ``type`` first;
* elsewhere, a mapping or list holding only scalars is written in flow style, others in block style;
* two-space indentation, list items indented under their key, no line wrapping, one blank line at most
  between lines, no trailing spaces, one newline at the end;
* numbers in one spelling: integers in decimal, floats as Python's shortest round-trip form
  (``1e-3`` -> ``0.001``), ``null`` for nulls; strings quoted only where YAML needs it.

An entry that holds a comment inside it stays in block style (flow style would lose the comment). The
node names' order, and every value, are never changed: after formatting, the text is loaded again and
compared with the original (the data and the order of every named entry, so the spec hash too, which the
tests check over the gallery and generated specs); a difference is a bug and leaves the file as it was
(:class:`FormatError`).
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError

SECTION_ORDER = ("graphspec", "name", "variant", "description", "plugins", "params", "variants", "blocks",
                 "inputs", "layers", "nodes", "outputs", "compile", "train", "expect")
NAMED_SECTIONS = ("inputs", "layers", "nodes", "params", "variants")
"""Sections (also of a block) whose entries are written one per line, in flow style."""
FORM_KEYS = ("type", "shared", "sequential", "model", "block", "op")
TRAILING_KEYS = ("input", "repeat", "when")


class FormatError(GraphspecError):
    """The spec cannot be formatted (not YAML), or formatting would change it (a bug: the file is left as is)."""

    stage = "fmt"


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.width = 1 << 20  # never wrap
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = False
    yaml.representer.add_representer(
        type(None), lambda representer, data: representer.represent_scalar("tag:yaml.org,2002:null", "null"))
    yaml.representer.add_representer(
        float, lambda representer, data: representer.represent_scalar("tag:yaml.org,2002:float", float_text(data)))
    yaml.Emitter = _double_quoting_emitter()
    return yaml


def float_text(value: float) -> str:
    """A float's one spelling: Python's shortest round-trip form, exponent unpadded (``1e-6``, ``1.001e-5``)."""
    if value != value:
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def _double_quoting_emitter():
    """ruamel's emitter, quoting with double quotes where a string needs quotes (as the gallery does)."""
    from ruamel.yaml.emitter import Emitter

    class DoubleQuoting(Emitter):
        def choose_scalar_style(self):
            style = super().choose_scalar_style()
            return '"' if style == "'" else style

    return DoubleQuoting


_YAML = None


def _shared_yaml():
    global _YAML
    if _YAML is None:
        _YAML = _yaml()
    return _YAML


def _tokens(ca_entry) -> list:
    if ca_entry is None:
        return []
    if isinstance(ca_entry, list):
        return [t for x in ca_entry for t in _tokens(x)]
    return [ca_entry]


def _blank(token: Any) -> bool:
    """A token that holds only blank lines (ruamel keeps a blank line after a block collection as a comment
    at its end): it is spacing, not a comment, and must not decide the layout."""
    return token is None or not str(getattr(token, "value", token)).strip()


def _last_items(node: Any) -> list[tuple[Any, Any]]:
    """(container, key) of the last item of ``node``, of that item's last item, and so on: an end-of-line
    comment there follows the closing bracket of a flow collection, and flow style keeps it."""
    chain = []
    while isinstance(node, (dict, list)) and len(node):
        key = list(node.keys())[-1] if isinstance(node, dict) else len(node) - 1
        chain.append((node, key))
        node = node[key]
    return chain


def _outer(parent: Any, key: Any) -> set[int]:
    """Ids of the comment tokens after ``parent[key]`` on its line (ruamel also hangs them on the child)."""
    ca = getattr(parent, "ca", None)
    return {id(t) for t in _tokens(ca.items.get(key))} if ca is not None else set()


def _inner_comments(node: Any, allowed: set | None = None, outer: set[int] = frozenset()) -> bool:
    """Whether a comment is inside ``node`` where flow style would lose or misplace it (``outer``: the
    tokens of the comment after ``node`` on its line, which flow style keeps)."""
    if allowed is None:
        allowed = {(id(container), key) for container, key in _last_items(node)}
    ca = getattr(node, "ca", None)
    if ca is not None:
        if any(not _blank(t) and id(t) not in outer for t in _tokens(ca.comment)) \
                or any(not _blank(t) for t in _tokens(ca.end)):
            return True
        for key, entry in ca.items.items():
            tokens = [t for t in _tokens(entry) if not _blank(t)]
            if not tokens:
                continue
            if (id(node), key) not in allowed:
                return True
            if isinstance(node, dict) and any(not _blank(t) and i != 2 for i, t in enumerate(entry or [])
                                              if not isinstance(t, list)):
                return True  # a comment before the key or the value, not after it
            if isinstance(node, dict) and any(not _blank(t) for t in _tokens([x for x in entry or []
                                                                              if isinstance(x, list)])):
                return True
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return any(_inner_comments(child, allowed, _outer(node, key)) for key, child in items
               if isinstance(child, (dict, list)))


FLOW_WIDTH = 100
"""Collections outside the named sections are written in flow style when this short (as JSON)."""


def _set_flow(node: Any, flow: bool) -> None:
    fa = getattr(node, "fa", None)
    if fa is not None:
        fa.set_flow_style() if flow else fa.set_block_style()


def _set_flow_all(node: Any) -> None:
    _set_flow(node, True)
    for child in (node.values() if isinstance(node, dict) else node):
        if isinstance(child, (dict, list)):
            _set_flow_all(child)


def _eol_slot(container: Any) -> int:
    """Where ruamel keeps the comment after an item on its line: slot 2 of a mapping's, 0 of a sequence's."""
    return 2 if isinstance(container, dict) else 0


def _flow_entry(parent: Any, key: Any) -> bool:
    """Write ``parent[key]`` in flow style if no comment inside it would be lost: what followed its last
    line (an end-of-line comment, a blank line) moves after the closing bracket, blank lines inside it go.
    False (nothing changed) where a comment is inside, or two comments would have to share its line."""
    node = parent[key]
    parent_ca = getattr(parent, "ca", None)
    if parent_ca is None or _inner_comments(node, outer=_outer(parent, key)):
        return False
    chain = _last_items(node)
    ends = []  # (slots, index, token): what follows each of the entry's last items on its line
    for container, last in chain:
        slots = container.ca.items.get(last)
        index = _eol_slot(container)
        token = slots[index] if slots and len(slots) > index else None
        if token is not None and not isinstance(token, list):
            ends.append((slots, index, token))
    comments = list({id(t): t for _, _, t in ends if not _blank(t)}.values())
    parent_slots = parent_ca.items.get(key)
    slot = _eol_slot(parent)
    occupied = parent_slots[slot] if parent_slots and len(parent_slots) > slot else None
    if occupied is not None and not _blank(occupied):
        comments = list({id(t): t for t in (*comments, occupied)}.values())
    if len(comments) > 1:
        return False  # one line cannot hold both
    trailing = comments[0] if comments else None
    blank_after = any(t.value.endswith("\n\n") for _, _, t in ends) \
        or any(_blank(t) for container, _ in chain for t in _tokens(container.ca.end)) \
        or (occupied is not None and occupied.value.endswith("\n\n"))
    for slots, index, _ in ends:
        slots[index] = None

    def drop_blank_tokens(slots: list | None) -> None:
        for index, token in enumerate(slots or []):
            if isinstance(token, list):
                slots[index] = [t for t in token if not _blank(t)] or None
            elif token is not None and _blank(token):
                slots[index] = None

    def drop_blanks(value: Any) -> None:
        ca = getattr(value, "ca", None)
        if ca is not None:
            ca.end = [t for t in _tokens(ca.end) if not _blank(t)] if ca.end else ca.end
            drop_blank_tokens(ca.comment)  # a blank line after the entry's key line
            for slots in ca.items.values():
                drop_blank_tokens(slots)
        for child in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()):
            drop_blanks(child)

    drop_blanks(node)
    if isinstance(parent, dict) and parent_slots and len(parent_slots) > 3:
        # blank lines after the key's line go (the entry becomes one line); one before the key (slot 1) stays
        parent_slots[3] = [t for t in _tokens(parent_slots[3]) if not _blank(t)] or None
    _set_flow_all(node)
    if trailing is None and (occupied is not None or blank_after):
        if occupied is not None:
            trailing = occupied  # a blank line already after the entry's key line
        else:
            from ruamel.yaml.error import CommentMark
            from ruamel.yaml.tokens import CommentToken

            trailing = CommentToken("\n\n", CommentMark(0))
    if trailing is not None:
        trailing.value = trailing.value.rstrip("\n") + ("\n\n" if blank_after else "\n")
        if parent_slots is None:
            parent_slots = parent_ca.items[key] = [None] * (4 if isinstance(parent, dict) else 2)
        while len(parent_slots) <= slot:
            parent_slots.append(None)
        parent_slots[slot] = trailing
    return True


def _reorder(mapping: Any, first: tuple[str, ...], last: tuple[str, ...] = ()) -> None:
    keys = list(mapping.keys())
    head = [k for k in first if k in mapping]
    tail = [k for k in last if k in mapping and k not in head]
    middle = [k for k in keys if k not in head and k not in tail]
    order = head + middle + tail
    if order == keys:
        return
    for key in order:
        mapping.move_to_end(key)


def _argument_order(class_name: str) -> tuple[str, ...]:
    """A Keras layer's arguments in its constructor's order (then the base layer's); () for other classes
    (optimizers, plugin layers: their arguments stay as written, after ``type``)."""
    from graphspec.catalogue import keras_catalogue

    catalogue = keras_catalogue()
    entry = catalogue.layer(class_name)
    if entry is None:
        return ()
    return tuple(entry.get("args", {})) + tuple(catalogue.data.get("base_layer_args", ()))


def _normalize_scalars(node: Any) -> None:
    """Numbers in one spelling (decimal integers, shortest round-trip floats)."""
    if isinstance(node, dict) and isinstance(node.get("type"), str):
        _reorder(node, ("type",) + _argument_order(node["type"]), TRAILING_KEYS)
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and type(value) is not float:
            node[key] = float(value)
        elif isinstance(value, int) and type(value) is not int:
            node[key] = int(value)
        elif isinstance(value, (dict, list)):
            _normalize_scalars(value)


def _compact(node: Any) -> bool:
    try:
        return len(json.dumps(node, allow_nan=True, default=str)) <= FLOW_WIDTH
    except (TypeError, ValueError):
        return False


def _layout(parent: Any, key: Any) -> None:
    """``parent[key]`` in flow style when short and no comment is inside; otherwise block style, children by
    the same rule."""
    node = parent[key]
    if not isinstance(node, (dict, list)):
        return
    if _compact(node) and _flow_entry(parent, key):
        return
    _set_flow(node, False)
    _layout_children(node)


def _layout_children(node: Any) -> None:
    for key in (list(node.keys()) if isinstance(node, dict) else range(len(node))):
        _layout(node, key)


def _named(section: Any) -> None:
    """Entries of a named section: one line each (flow style), unless a comment inside needs block style."""
    _set_flow(section, False)
    for name, entry in section.items():
        if isinstance(entry, dict):
            _reorder(entry, FORM_KEYS, TRAILING_KEYS)
        if isinstance(entry, (dict, list)):
            if not _flow_entry(section, name):
                _set_flow(entry, False)
                _layout_children(entry)


def _format_document(doc: Any) -> None:
    if not isinstance(doc, dict):
        return
    _set_flow(doc, False)
    _reorder(doc, SECTION_ORDER)
    _normalize_scalars(doc)
    for key, value in doc.items():
        if not isinstance(value, (dict, list)):
            continue
        if key in NAMED_SECTIONS and isinstance(value, dict):
            _named(value)
        elif key == "blocks" and isinstance(value, dict):
            _set_flow(value, False)
            for block_name, block in value.items():
                if not isinstance(block, dict):
                    _layout(value, block_name)
                    continue
                _set_flow(block, False)
                for section, content in block.items():
                    if section in NAMED_SECTIONS and isinstance(content, dict):
                        _named(content)
                    else:
                        _layout(block, section)
        elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            if not _flow_entry(doc, key):  # outputs: [a, b], plugins: [x]; block style where comments are inside
                _set_flow(value, False)
        else:
            _set_flow(value, False)  # a top-level section is a block
            _layout_children(value)


_BLANKS = re.compile(r"\n{3,}")


def _spacing(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    text = _BLANKS.sub("\n\n", "\n".join(lines))
    return text.strip("\n") + "\n"


def format_text(text: str, file: str | None = None) -> str:
    """The spec ``text`` in the canonical layout; raises :class:`FormatError` (or the loader's error)."""
    from graphspec.loader import loads

    original = loads(text, file=file)  # the project's own loader decides what the spec is (and its errors)
    yaml = _shared_yaml()
    try:
        # Safe: ruamel's round-trip loader (typ="rt") builds only its own comment-keeping containers and
        # scalars, never Python objects; and the hardened loader above has already refused non-core tags,
        # anchors and aliases, and text past the size and depth caps.
        doc = yaml.load(text)
    except Exception as error:  # ruamel's YAML errors: the loader accepted it, so this is a ruamel limit
        raise FormatError([Diagnostic(code="fmt-unsupported", file=file,
                                      message=f"fmt cannot read this YAML ({type(error).__name__}); left as is")]) from None
    _format_document(doc)
    out = io.StringIO()
    yaml.dump(doc, out)
    formatted = _spacing(out.getvalue())
    _verify(original, formatted, file)
    before, after = comments(text), comments(formatted)
    if sorted(c for _, c in before) != sorted(c for _, c in after):
        kept = [c for _, c in after]
        for line, comment in before:
            if comment in kept:
                kept.remove(comment)
                continue
            raise FormatError([Diagnostic(
                code="fmt-comment-in-flow", file=file, line=line, message=f"fmt cannot keep the comment '{comment}' "
                "(a comment inside a flow collection, between '{' and '}' or '[' and ']'); the file is left as is",
                hint="move the comment to the end of the entry's last line, or above the entry")])
    return formatted


def canonical_text(text: str, file: str | None = None) -> str:
    """``text`` in the canonical layout: itself when the fast check is sure it already is, else
    :func:`format_text`'s (what a writer of specs, such as ``graphspec import``, ends with)."""
    return text if is_formatted(text) else format_text(text, file)


def comments(text: str) -> list[tuple[int, str]]:
    """The comments of a YAML text: (line, text) of each ``# ...`` outside a scalar."""
    import yaml

    spans = []
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for token in yaml.scan(text, Loader=loader):
            if isinstance(token, yaml.ScalarToken):
                spans.append((token.start_mark.index, token.end_mark.index))
    except yaml.YAMLError:
        return []
    spans.sort()
    found = []
    offset = 0
    span_at = 0
    for number, line in enumerate(text.split("\n"), start=1):
        column = line.find("#")
        while column != -1:
            index = offset + column
            while span_at < len(spans) and spans[span_at][1] <= index:
                span_at += 1
            inside = span_at < len(spans) and spans[span_at][0] <= index < spans[span_at][1]
            if not inside and (column == 0 or line[column - 1] in " \t"):
                found.append((number, line[column:].strip()))
                break
            column = line.find("#", column + 1)
        offset += len(line) + 1
    return found


ORDERED = frozenset({"nodes", "inputs", "outputs", "layers", "params", "variants", "blocks"})
"""Mappings whose entries' order means something (a node without input takes the previous one; inputs and
outputs are the model's in order): fmt keeps it, and checks that it did."""


def _ordered_view(data: Any) -> str:
    """JSON of the data with every mapping's keys sorted except those whose order means something."""

    def view(value, keep_order=False):
        if isinstance(value, dict):
            items = value.items() if keep_order else sorted(value.items(), key=lambda kv: str(kv[0]))
            return [[str(k), view(v, k in ORDERED)] for k, v in items]
        if isinstance(value, list):
            return [view(v) for v in value]
        return value

    return json.dumps(view(data), allow_nan=True, ensure_ascii=False)


def _verify(original, formatted: str, file: str | None) -> None:
    from graphspec.loader import loads

    def changed(why: str):
        return FormatError([Diagnostic(code="fmt-would-change-spec", file=file,
                                       message=f"formatting would change the spec ({why}); left as is",
                                       hint="a bug in graphspec fmt: please report it with the spec")])

    try:
        again = loads(formatted, file=file)
    except GraphspecError:
        raise changed("the result does not load") from None
    if _ordered_view(again.data) != _ordered_view(original.data):
        raise changed("its data differs")


def spec_hash_of(text: str, file: str | None = None, directory=None) -> str | None:
    """The spec hash of ``text``, or None when it does not check (used by the tests' property)."""
    from graphspec.canonical import spec_hash
    from graphspec.pipeline import check_text

    try:
        return spec_hash(check_text(text, file=file, directory=directory).graph)
    except GraphspecError:
        return None


# ---- a fast path for ``fmt --check`` -------------------------------------------------------------------------
#
# ruamel.yaml's round trip costs about 15 ms a spec. Most specs in a CI run are already formatted, and that
# can be told without it: emit the data (read by graphspec's libyaml loader) in the canonical layout with a
# small emitter of graphspec's own, and compare it with the file's lines, comments and blank lines taken out.
# The emitter answers only where it is sure to write what ruamel.yaml would (plain scalars of a conservative
# alphabet, flow entries, scalar lists, no multi-line strings); anything else is "not sure", and the full
# formatter decides. So the fast path can only say "formatted" for text the full formatter leaves as it is
# (tests/test_fmt.py checks this over the gallery, generated specs and random layouts).


class _Unsure(Exception):
    pass


_QUOTED_WORDS = {"null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False", "FALSE",
                 ".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN", "="}
"""Strings ruamel.yaml writes in double quotes (YAML 1.2 spellings of other types); YAML 1.1's
y/n/yes/no/on/off it leaves plain. Other spellings of these words: not sure."""
_UNSURE_WORDS = {word.lower() for word in _QUOTED_WORDS}
_PLAIN_SAFE = re.compile(r"[A-Za-z_$/][A-Za-z0-9_ $./()*+<>=!'\-]*\Z")
_FLOW_UNSAFE = set(",[]{}")


def _scalar(value: Any, flow: bool) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Unsure
        return float_text(value)
    if isinstance(value, str) and value in _QUOTED_WORDS:
        return f'"{value}"'
    if not isinstance(value, str) or not value or value.lower() in _UNSURE_WORDS:
        raise _Unsure
    plain = bool(_PLAIN_SAFE.match(value)) and value == value.strip() and "  " not in value \
        and not value.startswith(("<", "=")) and not (flow and _FLOW_UNSAFE & set(value))
    if plain:
        return value
    if not value.isascii() or not value.isprintable():
        raise _Unsure
    if flow and _FLOW_UNSAFE & set(value) and "#" not in value and ":" not in value:
        # A flow indicator inside a flow collection: ruamel.yaml double-quotes it. Elsewhere (a top-level
        # 'name: a,b', or 'x:y' and 'a#b' in a node) it may stay plain: its call, not a guess (review).
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise _Unsure


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        if not value:
            raise _Unsure
        return "{" + ", ".join(f"{_scalar(k, True)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        if not value:
            raise _Unsure
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value, True)


def _ordered(value: Any, named_entry: bool = False) -> Any:
    """The data in fmt's key order (as :func:`_normalize_scalars` and :func:`_named` put it)."""
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    if not isinstance(value, dict):
        return value

    def reorder(mapping: dict, first, last=()) -> dict:
        head = [k for k in first if k in mapping]
        tail = [k for k in last if k in mapping and k not in head]
        middle = [k for k in mapping if k not in head and k not in tail]
        return {k: mapping[k] for k in head + middle + tail}

    mapping = dict(value)
    if isinstance(mapping.get("type"), str):
        mapping = reorder(mapping, ("type",) + _argument_order(mapping["type"]), TRAILING_KEYS)
    if named_entry:
        mapping = reorder(mapping, FORM_KEYS, TRAILING_KEYS)
    return {k: _ordered(v) for k, v in mapping.items()}


def _block(key: str, value: Any, indent: int, lines: list[str]) -> None:
    """``key: value`` by the rule of :func:`_layout` (flow when short, else block)."""
    pad = " " * indent
    if not isinstance(value, (dict, list)):
        lines.append(f"{pad}{_scalar(key, False)}: {_scalar(value, False)}")
        return
    if not value:
        raise _Unsure
    if _compact(value):
        lines.append(f"{pad}{_scalar(key, False)}: {_flow(value)}")
        return
    lines.append(f"{pad}{_scalar(key, False)}:")
    if isinstance(value, dict):
        for k, v in value.items():
            _block(k, v, indent + 2, lines)
    else:
        for item in value:
            if isinstance(item, (dict, list)) and not _compact(item):
                raise _Unsure
            lines.append(f"{pad}  - {_flow(item) if isinstance(item, (dict, list)) else _scalar(item, False)}")


def _named_lines(key: str, section: dict, indent: int, lines: list[str]) -> None:
    if not section:
        raise _Unsure
    pad = " " * indent
    lines.append(f"{pad}{_scalar(key, False)}:")
    for name, entry in section.items():
        entry = _ordered(entry, named_entry=True)
        text = _flow(entry) if isinstance(entry, (dict, list)) else _scalar(entry, True)
        lines.append(f"{pad}  {_scalar(name, False)}: {text}")


def canonical_lines(data: Any) -> list[str]:
    """The canonical layout of comment-free ``data``; raises :class:`_Unsure` where not sure."""
    if not isinstance(data, dict) or not data:
        raise _Unsure
    order = [k for k in SECTION_ORDER if k in data] + [k for k in data if k not in SECTION_ORDER]
    lines: list[str] = []
    for key in order:
        value = data[key]
        if not isinstance(key, str):
            raise _Unsure
        if key in NAMED_SECTIONS and isinstance(value, dict):
            _named_lines(key, value, 0, lines)
        elif key == "blocks" and isinstance(value, dict):
            if not value:
                raise _Unsure
            lines.append("blocks:")
            for name, block in value.items():
                if not isinstance(block, dict) or not block:
                    raise _Unsure
                lines.append(f"  {_scalar(name, False)}:")
                for section, content in block.items():
                    if section in NAMED_SECTIONS and isinstance(content, dict):
                        _named_lines(section, content, 4, lines)
                    else:
                        _block(section, _ordered(content), 4, lines)
        elif isinstance(value, list) and value and all(not isinstance(v, (dict, list)) for v in value):
            lines.append(f"{key}: {_flow(value)}")
        elif isinstance(value, (dict, list)):
            if not value:
                raise _Unsure
            value = _ordered(value)
            lines.append(f"{key}:")
            for k, v in (value.items() if isinstance(value, dict) else ()):
                _block(k, v, 2, lines)
            if isinstance(value, list):
                raise _Unsure
        elif isinstance(value, str) and "\n" in value:
            lines.append((key, value))  # a block scalar (> or |): ruamel.yaml keeps it as written
        else:
            lines.append(f"{key}: {_scalar(value, False)}")
    return lines


def _block_scalar_matches(key: str, value: str, lines: list[str], at: int) -> int | None:
    """Where the block scalar ``key: >`` or ``key: |`` at ``lines[at]`` ends, if it holds ``value`` with
    two-space indentation (as fmt writes it); None if not sure."""
    style = lines[at][len(key) + 2:] if lines[at].startswith(f"{key}: ") else ""
    if style not in (">", "|"):
        return None
    end = at + 1
    content = []
    while end < len(lines) and lines[end].startswith("  "):
        if lines[end].startswith("   "):
            return None
        content.append(lines[end][2:])
        end += 1
    if not content or not value.endswith("\n") or value.endswith("\n\n"):
        return None
    joined = ("\n" if style == "|" else " ").join(content) + "\n"
    return end if joined == value else None


def is_formatted(text: str) -> bool:
    """True when ``text`` is sure to be in the canonical layout already (False: not sure, ask format_text)."""
    from graphspec.loader import loads

    if not text.endswith("\n") or text.startswith("\n") or "\n\n\n" in text or "\t" in text or "\r" in text \
            or " \n" in text or "\n---" in text or text.startswith("---") or "\n..." in text:
        return False
    try:
        data = loads(text).data
        expected = canonical_lines(data)
    except (GraphspecError, _Unsure, RecursionError):
        return False
    found = comments(text)
    by_line: dict[int, int] = {}
    for line, comment in found:
        by_line[line] = len(comment)
    stripped = []
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        if number in by_line:
            line = line[: len(line) - by_line[number]].rstrip()
            if not line:
                continue
        if line:
            stripped.append(line)
    at = 0
    for item in expected:
        if at >= len(stripped):
            return False
        if isinstance(item, tuple):
            end = _block_scalar_matches(item[0], item[1], stripped, at)
            if end is None:
                return False
            at = end
        elif stripped[at] != item:
            return False
        else:
            at += 1
    return at == len(stripped)
