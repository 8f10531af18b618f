"""Spec data to readable YAML: sections in block style, one node per line in flow style."""

from __future__ import annotations

import json
import re
from typing import Any

from graphspec.fmt import float_text

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"}


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)  # fmt's one spelling of a float (1e-6, not 1e-06)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    # JSON's escapes are YAML's, but JSON leaves DEL, NEL and the line separators as they are, which YAML
    # does not allow in a stream: those are escaped too (review: a layer named 'd\x7f').
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
                   for c in json.dumps(text, ensure_ascii=False))


def flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def dump(data: dict, comment: str | None = None) -> str:
    lines: list[str] = []
    if comment:
        lines.extend(f"# {line}" if line else "#" for line in comment.splitlines())
    first = True
    for key, value in data.items():
        if key == "blocks" and isinstance(value, dict):
            if not first:
                lines.append("")
            lines.append("blocks:")
            for name, block in value.items():
                lines.append(f"  {scalar(name)}:")
                for part, content in block.items():
                    if isinstance(content, dict):
                        lines.append(f"    {part}:")
                        lines.extend(f"      {scalar(k)}: {flow(v)}" for k, v in content.items())
                    else:
                        lines.append(f"    {part}: {flow(content)}")
            lines.append("")
            first = True
            continue
        if key in ("inputs", "layers", "nodes", "params") and isinstance(value, dict):
            if not first:
                lines.append("")
            lines.append(f"{key}:")
            for name, item in value.items():
                lines.append(f"  {scalar(name)}: {flow(item)}")
            lines.append("")
            first = True
            continue
        if key in ("compile", "expect") and isinstance(value, dict):
            if not first:
                lines.append("")
            lines.append(f"{key}:")
            for name, item in value.items():
                lines.append(f"  {scalar(name)}: {flow(item)}")
            first = False
            continue
        if key == "description" and isinstance(value, str):
            lines.append("description: >")
            lines.extend("  " + part for part in _wrap(value))
            first = False
            continue
        lines.append(f"{key}: {flow(value)}")
        first = False
    text = "\n".join(lines).rstrip("\n") + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


def _wrap(text: str, width: int = 96) -> list[str]:
    words, out, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out or [""]
