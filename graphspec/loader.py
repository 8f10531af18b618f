"""Stage 1 — load: YAML text to plain data plus a :class:`SourceMap`.

The spec may come from an untrusted pull request, so this stage never lets PyYAML
construct anything. It reads the *event stream* (libyaml's iterative parser when
available) and builds plain ``dict``/``list``/scalars itself, with an explicit stack:

* the file size is capped before parsing; nesting depth is capped while parsing,
  before anything deep is built (libyaml's recursive composer crashes near 30,000);
* anchors and aliases are rejected (no "billion laughs");
* only the YAML core tags are accepted (``!!python/...`` and every other tag is an error);
* duplicate keys are errors naming both lines (PyYAML silently keeps the last one);
* plain scalars follow the YAML 1.2 core schema: only ``true``/``false`` are
  booleans, ``1e-3`` is a float, ``012`` is the integer 12, ``no``/``on`` are strings.
"""

from __future__ import annotations

import math
import re
import stat
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import yaml

from graphspec.errors import Diagnostic, DiagnosticSink, LoadError, Path
from graphspec.source import SourceMap

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Larger files are refused before parsing (a 10,000-node spec is about 1 MiB)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences a spec may use."""
MAX_YAML_NODES = 200_000
"""Most scalars, mappings and sequences a spec may hold (a 10,000-node spec has about 70,000)."""
MAX_INT_DIGITS = 19
"""Integers beyond 64 bits are refused: no spec needs them and they only cost memory."""

# libyaml's parser is iterative and fast; the pure-Python one is the fallback.
_PARSE_LOADER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

_CORE_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {None, "!"} | {_CORE_TAG + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INDEXED_REF = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]*\[[0-9]+\]")
"""An indexed reference (``lstm[1]``); a name starts after a non-name character, so a long run
of name characters is read once, not once per starting position (that was quadratic)."""
_HINT_WINDOW = 2_000
"""Characters either side of a syntax error that its hint looks at."""
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


@dataclass
class LoadedSpec:
    """The output of the load stage: plain data and where each piece came from."""

    data: Any
    source: SourceMap


class _TooLarge(Exception):
    pass


_NOT_SPECIAL = frozenset("abcdeghijklmopqrsuvwxyzABCDEGHIJKLMOPQRSUVWXYZ_/")  # cannot start null/bool/number


def _resolve_plain(value: str) -> Any:
    """Type of an untagged plain scalar under the YAML 1.2 core schema."""
    if value and value[0] in _NOT_SPECIAL:
        return value  # the common case (names, layer types): no pattern can match
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT10.match(value):
        if len(value.lstrip("+-")) > MAX_INT_DIGITS:
            raise _TooLarge(value)
        return int(value, 10)
    if _INT8.match(value):
        if len(value) > 24:
            raise _TooLarge(value)
        return int(value[2:], 8)
    if _INT16.match(value):
        if len(value) > 18:
            raise _TooLarge(value)
        return int(value[2:], 16)
    if _FLOAT.match(value):
        number = float(value)
        if math.isinf(number):
            raise _TooLarge(value)
        return number
    if _INF.match(value):
        return -math.inf if value.startswith("-") else math.inf
    if _NAN.match(value):
        return math.nan
    return value


def _resolve_tagged(value: str, tag: str) -> Any:
    """A scalar with an explicit core tag (``!!str 1``, ``!!float 3``)."""
    kind = tag[len(_CORE_TAG):]
    if kind == "str":
        return value
    resolved = _resolve_plain(value)
    if kind == "null" and resolved is None:
        return None
    if kind == "bool" and isinstance(resolved, bool):
        return resolved
    if kind == "int" and isinstance(resolved, int) and not isinstance(resolved, bool):
        return resolved
    if kind == "float" and isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
        return float(resolved)
    raise ValueError(f"'{value}' is not a valid !!{kind}")


def _pos(mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def loads(text: str, file: str | None = None) -> LoadedSpec:
    """Parse spec text into plain data and a source map; raises :class:`LoadError`."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a lone surrogate: str from a Python caller, never from a file
        line, col = _offset_position(text, exc.start)
        raise LoadError([Diagnostic(code="bad-encoding", file=file, line=line, col=col,
                                    message=f"the text holds the lone surrogate U+{ord(text[exc.start]):04X}, "
                                            "which is not a character", hint="give the spec as UTF-8 text")]) from None
    if size > MAX_FILE_BYTES:
        raise LoadError([Diagnostic(code="file-too-large", file=file,
                                    message=f"the spec is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                                    hint="split it, or generate it from a smaller description")])
    start = 0
    for _ in range(_MAX_CUTS):
        cut = _scan_cut(text, start)
        if cut is None or cut >= len(text):
            break
        # The text up to ``cut`` nests too deep (or is too large to scan further): read only that
        # much, so that the event stream below, not the YAML library scanning ahead, finds the
        # problem (libyaml 0.2.6 stops at 1,000 levels with its own error; 0.2.5 does not).
        try:
            _parse(text[:cut], file)
        except LoadError as error:
            fatal = error.diagnostics[-1]
            if fatal.code != "yaml-syntax" or fatal.line is None or \
                    (fatal.line, fatal.col or 0) < _offset_position(text, cut):
                raise  # a verdict on the text before the cut, not an artifact of cutting it
        # Nothing found before the cut: the scan over-estimated (a plain scalar continued on a line
        # that starts with '[', say). Scan on from the next line.
        start = text.find("\n", cut) + 1 or len(text)
    return _parse(text, file)


_MAX_CUTS = 4
"""Prefixes read before the whole text (each cut the scan over-estimated costs one more)."""


def _parse(text: str, file: str | None) -> LoadedSpec:
    source = SourceMap(file=file, text=text)
    sink = DiagnosticSink(source=None)

    def fail(code: str, message: str, position: tuple[int, int] | None, hint: str | None = None):
        line, col = position if position else (None, None)
        sink.add(Diagnostic(code=code, message=message, file=file, line=line, col=col, hint=hint))
        raise LoadError(sink.diagnostics)

    # Each open container: [container, path, pending_key, key_position, seen_keys]
    stack: list[list] = []
    root: Any = None
    documents = 0
    node_count = 0

    def attach(value: Any, position: tuple[int, int]) -> Path | None:
        """Place a finished value in its parent; returns its path."""
        nonlocal root
        if not stack:
            root = value
            source.values[()] = position
            return ()
        frame = stack[-1]
        container, path = frame[0], frame[1]
        if isinstance(container, list):
            child = path + (len(container),)
            container.append(value)
            source.values[child] = position
            return child
        if frame[2] is None:  # this value is a key
            if not isinstance(value, str):
                fail("bad-key", "mapping keys must be plain names, not nested mappings or lists", position)
            if value in frame[4]:
                first = frame[4][value]
                sink.add(Diagnostic(
                    code="duplicate-key",
                    message=f"duplicate key '{value}' (first defined at line {first[0]})",
                    file=file, line=position[0], col=position[1],
                    hint="YAML would silently keep only the last one; remove or rename one of them",
                ))
            else:
                frame[4][value] = position
            frame[2], frame[3] = value, position
            return None
        key = frame[2]
        child = path + (key,)
        if key not in container:
            container[key] = value
            source.keys[child] = frame[3]
            source.values[child] = position
        frame[2] = None
        return child

    try:
        for event in yaml.parse(text, Loader=_PARSE_LOADER):
            mark = event.start_mark
            position = (mark.line + 1, mark.column + 1) if mark else None
            if event.__class__ is yaml.ScalarEvent and event.tag is None and event.anchor is None:
                # Fast path for the bulk of a spec: an untagged scalar.
                node_count += 1
                if node_count > MAX_YAML_NODES:
                    fail("too-many-values", f"the spec holds more than {MAX_YAML_NODES:,} YAML values", position,
                         "a spec never needs this many; generate smaller specs or split the model")
                try:
                    value = _resolve_plain(event.value) if event.implicit[0] else event.value
                except _TooLarge:
                    fail("number-too-large", f"the number '{event.value[:40]}' is out of range", position,
                         "integers are limited to 64 bits and floats must be finite")
                attach(value, position)
                continue
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    fail("multiple-documents", "a spec file holds exactly one YAML document", position,
                         "remove the '---' separator and everything after it, or use one file per spec")
                continue
            if isinstance(event, yaml.AliasEvent):
                fail("alias-not-allowed", f"YAML aliases ('*{event.anchor}') are not allowed in a spec", position,
                     "write the value out, or share a layer through 'layers:'")
            if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                node_count += 1
                if node_count > MAX_YAML_NODES:
                    fail("too-many-values", f"the spec holds more than {MAX_YAML_NODES:,} YAML values", position,
                         "a spec never needs this many; generate smaller specs or split the model")
                if event.anchor is not None:
                    fail("anchor-not-allowed", f"YAML anchors ('&{event.anchor}') are not allowed in a spec",
                         position, "write the value out, or share a layer through 'layers:'")
                expected_tag = {yaml.MappingStartEvent: "map", yaml.SequenceStartEvent: "seq"}.get(type(event))
                if expected_tag and event.tag not in (None, "!", _CORE_TAG + expected_tag):
                    shown = "!!" + event.tag[len(_CORE_TAG):] if event.tag.startswith(_CORE_TAG) else event.tag
                    fail("forbidden-tag", f"the YAML tag '{shown}' cannot be given to a "
                         f"{'mapping' if expected_tag == 'map' else 'list'}", position)
                if event.tag not in _ALLOWED_TAGS:
                    shown = "!!" + event.tag[len(_CORE_TAG):] if event.tag.startswith(_CORE_TAG) else event.tag
                    fail("forbidden-tag", f"the YAML tag '{shown}' is not allowed", position,
                         "a spec is plain data: only the YAML core tags (!!str, !!int, !!float, "
                         "!!bool, !!null, !!map, !!seq) are accepted")
            if isinstance(event, yaml.ScalarEvent):
                try:
                    if event.tag and event.tag != "!":
                        value = _resolve_tagged(event.value, event.tag)
                    elif event.implicit[0] and event.tag is None:
                        value = _resolve_plain(event.value)
                    else:
                        value = event.value
                except _TooLarge:
                    fail("number-too-large", f"the number '{event.value[:40]}' is out of range", position,
                         "integers are limited to 64 bits and floats must be finite")
                except ValueError as exc:
                    fail("bad-scalar", str(exc), position)
                attach(value, position)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    fail("too-deep", f"the spec nests deeper than {MAX_DEPTH} levels", position,
                         "a spec never needs this much nesting; flatten it")
                container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is None:
                    fail("bad-key", "mapping keys must be plain names, not nested mappings or lists", position)
                path = attach(container, position)
                stack.append([container, path, None, None, {}])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                stack.pop()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        hint = "check the indentation and the brackets around this place"
        if mark is not None and _INDEXED_REF.search(_around(text, mark.index)):
            hint = "inside {...} or [...], quote an indexed reference: input: 'lstm[1]'"
        fail("yaml-syntax", f"YAML syntax error: {problem}", _pos(mark) if mark else None, hint)
    except yaml.reader.ReaderError as exc:  # characters YAML does not allow (control characters, NUL)
        fail("yaml-syntax", f"the character {exc.character!r} (U+{ord(exc.character):04X}) is not allowed in YAML"
             if isinstance(exc.character, str) else f"cannot read the file as YAML: {exc.reason}",
             _offset_position(text, exc.position), "remove it, or write it as an escape in a double-quoted string")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        fail("yaml-syntax", f"cannot read the file as YAML: {exc}", _pos(mark) if mark else None)

    if sink.has_errors:
        raise LoadError(sink.diagnostics)
    return LoadedSpec(data=root, source=source)


def _around(text: str, index: int) -> str:
    """The line holding character ``index``, at most ``_HINT_WINDOW`` characters either side of it."""
    index = max(0, min(index, len(text)))
    start = max(text.rfind("\n", max(0, index - _HINT_WINDOW), index) + 1, index - _HINT_WINDOW)
    end = text.find("\n", index, index + _HINT_WINDOW)
    return text[start:end if end >= 0 else index + _HINT_WINDOW]


# ---------------------------------------------------------------------------------------------
# Nesting pre-scan: graphspec's own depth defence, before the YAML library reads ahead
# ---------------------------------------------------------------------------------------------

MAX_SCAN_TOKENS = 500_000
"""Brackets, quotes and comments the nesting scan looks at before it cuts the text there (each
collection or quoted scalar is one of :data:`MAX_YAML_NODES` values, so a spec within that cap
rarely has more; the parser reports what is before the cut, or else reads the whole text)."""

_BLOCK_CANDIDATE = re.compile(r"[\[{\"'#|>]")
_FLOW_CANDIDATE = re.compile(r"[\[\]{}\"'#]")
_FLAT_COLLECTION = re.compile(r"\[[^\[\]{}\"'#]*\]|\{[^\[\]{}\"'#]*\}")
_SINGLE_QUOTED = re.compile(r"'[^']*(?:''[^']*)*'")
_DOUBLE_QUOTED = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BLOCK_HEADER = re.compile(r"[|>][1-9+-]{0,2}(?:[ \t]+#[^\n]*|[ \t]*)(?:\r?\n|\Z)")
_FIRST_CONTENT = re.compile(r"^( *)[^ \r\n]", re.M)
_SPACE = " \t\r\n"
_MAX_PROPERTY = 1024
"""Longest tag or anchor the scan recognises before a node (longer ones are not real)."""
_FLOW_PLAIN_END = re.compile(r"[\[\]{},]|:[ \t\r\n\[\]{},]|[ \t\r\n]#")
"""Where a plain scalar inside a flow collection ends."""
_PLAIN_END = re.compile(r":[ \t\r\n]|[ \t]#|[\r\n]")
"""Where a plain scalar outside flow collections ends: a value indicator, a comment, the line's end."""


def _scan_cut(text: str, start: int = 0) -> int | None:
    """Where to cut ``text`` so that the parser sees no flow nesting deeper than :data:`MAX_DEPTH`.

    A linear scan of the YAML text that follows flow collections (``[``/``{``) through quoted
    scalars, comments, block scalars and plain scalars. It returns the offset just past the first
    bracket that opens a flow collection deeper than :data:`MAX_DEPTH` (or where it stopped
    after :data:`MAX_SCAN_TOKENS`), or None. It only has to be right for valid YAML: the parser
    then reports the problem at its place, from the events; where the scan misjudged, the
    caller reads the whole text. ``start`` is the start of a line outside flow collections.
    """
    if text.count("[", start) + text.count("{", start) <= MAX_DEPTH:
        return None
    depth = 0
    pos = start
    tokens = 0
    while True:
        match = (_FLOW_CANDIDATE if depth else _BLOCK_CANDIDATE).search(text, pos)
        if match is None:
            return None
        tokens += 1
        at = match.start()
        if tokens > MAX_SCAN_TOKENS:
            return at
        char = text[at]
        pos = at + 1
        if char == "#":
            if at == 0 or text[at - 1] in _SPACE:  # a comment: skip to the end of the line
                end = text.find("\n", at)
                if end < 0:
                    return None
                pos = end
            continue
        if depth:
            if char in "[{":
                if depth >= MAX_DEPTH:
                    return at + 1
                flat = _FLAT_COLLECTION.match(text, at)
                if flat:  # the common case, e.g. {type: Dense, units: 4}: no deeper level inside
                    pos = flat.end()
                else:
                    depth += 1
            elif char in "]}":
                depth -= 1
            elif _flow_node_start(text, at):
                end = _quoted_end(text, at)
                if end is None:
                    return None
                pos = end
            else:  # a quote inside a plain scalar (don't): nothing is structure up to its end
                end = _FLOW_PLAIN_END.search(text, at)
                pos = end.start() if end else len(text)
            continue
        if not _block_node_start(text, at):
            # Inside a plain scalar (a[0], don't, a|b): nothing is structure up to its end.
            end = _PLAIN_END.search(text, at)
            pos = end.start() if end else len(text)
            continue
        if char in "[{":
            flat = _FLAT_COLLECTION.match(text, at)
            if flat:
                pos = flat.end()
            else:
                depth = 1
        elif char in "'\"":
            end = _quoted_end(text, at)
            if end is None:
                return None
            pos = end
        else:
            pos = _block_scalar_end(text, at)


def _quoted_end(text: str, at: int) -> int | None:
    """End of the quoted scalar starting at ``at``, or None when it never ends."""
    match = (_SINGLE_QUOTED if text[at] == "'" else _DOUBLE_QUOTED).match(text, at)
    return match.end() if match else None


def _flow_node_start(text: str, at: int) -> bool:
    """Whether a quote at ``at`` inside a flow collection starts a scalar (not inside a plain one)."""
    before = at - 1
    while before >= 0 and text[before] in _SPACE:
        before -= 1
    if before < 0 or text[before] in "[{,:?":
        return True
    return _after_property(text, before, flow=True)


def _after_property(text: str, before: int, *, flow: bool) -> bool:
    """Whether ``text[before]`` ends a tag or anchor (``!!seq``, ``&a``) that starts a node."""
    start = before
    while start > 0 and text[start - 1] not in _SPACE and not (flow and text[start - 1] in "[{,"):
        start -= 1
        if before - start > _MAX_PROPERTY:
            return False
    if text[start] not in "!&":
        return False
    return _flow_node_start(text, start) if flow else _block_node_start(text, start)


def _block_node_start(text: str, at: int) -> bool:
    """Whether ``text[at]``, outside flow collections, is where a node starts.

    That is after indentation, after the indicators ``- ``, ``? ``, ``: `` or ``--- ``, or after a
    tag or anchor; anywhere else it is inside a plain scalar.
    """
    while True:
        before = at - 1
        while before >= 0 and text[before] in " \t":
            before -= 1
        if before < 0 or text[before] in "\r\n":
            return True
        if before == at - 1:
            return False  # no space between: 'a:[', '-[', 'x[' are plain scalars
        char = text[before]
        if char == ":":
            return True
        if char in "-?":
            if before >= 2 and text[before - 2:before + 1] == "---" and \
                    (before == 2 or text[before - 3] in "\r\n"):
                return True
            if before == 0 or text[before - 1] in _SPACE:
                at = before
                continue
            return False
        return _after_property(text, before, flow=False)


def _block_scalar_end(text: str, at: int) -> int:
    """Where the block scalar whose indicator (``|``, ``>``) is at ``at`` ends; ``at + 1`` if it is none."""
    header = _BLOCK_HEADER.match(text, at)
    if header is None:
        return at + 1  # '|' or '>' inside a plain scalar's first character position: not a header
    first = _FIRST_CONTENT.search(text, header.end())
    if first is None:
        return len(text)
    indent = len(first.group(1))
    line_start = text.rfind("\n", 0, at) + 1
    header_indent = len(text[line_start:at]) - len(text[line_start:at].lstrip(" "))
    if indent <= header_indent:
        return first.start()  # an empty block scalar
    end = re.compile(rf"^ {{0,{indent - 1}}}[^ \r\n]", re.M).search(text, first.end())
    return end.start() if end else len(text)


def _offset_position(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character (or byte) offset."""
    newline = "\n" if isinstance(text, str) else b"\n"
    line = text.count(newline, 0, offset) + 1
    return line, offset - (text.rfind(newline, 0, offset) + 1) + 1


def load(path: str | FsPath) -> LoadedSpec:
    """Read and parse a spec file; raises :class:`LoadError` with a located diagnostic."""
    path = FsPath(path)
    shown = str(path)
    too_large = Diagnostic(code="file-too-large", file=shown,
                           message=f"the spec is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                           hint="split it, or generate it from a smaller description")
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode) and not stat.S_ISDIR(status.st_mode):
            # A FIFO would block the read forever, a device would never end.
            raise LoadError([Diagnostic(code="file-unreadable", file=shown,
                                        message=f"{shown} is not a regular file", hint="give the path of a .yaml file")])
        if status.st_size > MAX_FILE_BYTES:
            raise LoadError([too_large])
        with path.open("rb") as handle:
            # Read at most one byte past the cap: a device file or a growing file cannot exhaust memory.
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise LoadError([Diagnostic(code="file-not-found", message=f"no such file: {shown}", file=shown)]) from None
    except IsADirectoryError:
        raise LoadError([Diagnostic(code="file-not-found", message=f"{shown} is a directory", file=shown)]) from None
    except OSError as exc:
        raise LoadError([Diagnostic(code="file-unreadable", message=f"cannot read {shown}: {exc.strerror}",
                                    file=shown)]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise LoadError([too_large])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _offset_position(raw, exc.start)
        raise LoadError([Diagnostic(code="bad-encoding", file=shown, line=line, col=col,
                                    message=f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x})",
                                    hint="save the spec as UTF-8")]) from None
    return loads(text, file=shown)
