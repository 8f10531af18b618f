"""Reading what ``graphspec import`` converts: a ``.keras`` archive's config, a JSON config, an application.

A ``.keras`` archive is read as a zip of plain JSON: its ``config.json`` is never handed to Keras'
deserializers. The same defences as a ``model:`` node's saved model apply (only Keras' own classes and
the enabled plugins' layers, no Lambda, bounded sizes), plus the archive's own: member names with path
tricks, members that inflate far beyond their stored size (zip bombs), too many members.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path as FsPath
from typing import Any

from graphspec.errors import Diagnostic, GraphspecError
from graphspec.keras_config import LEGACY_MODULES, MAX_CONFIG_BYTES, first_refusal

MAX_MEMBERS = 10_000
MAX_RATIO = 200
"""A member inflating more than this many times its stored size is treated as a zip bomb."""


class ImportSourceError(GraphspecError):
    """The source of ``graphspec import`` cannot be converted (unsafe, unreadable, or not expressible)."""


def fail(code: str, message: str, hint: str | None = None, file: str | None = None) -> GraphspecError:
    return ImportSourceError([Diagnostic(code=code, message=message, hint=hint, file=file)])


def read_archive(path: FsPath) -> tuple[dict, dict]:
    """``(config, metadata)`` of a ``.keras`` archive, read as JSON after the archive checks."""
    where = str(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise fail("bad-archive", f"'{path}' is not a Keras 3 .keras archive ({exc})", file=where) from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise fail("unsafe-archive", f"'{path}' holds {len(members)} members", file=where)
        try:
            info = archive.getinfo("config.json")
        except KeyError:
            raise fail("bad-archive", f"'{path}' has no config.json (not a Keras 3 .keras archive)",
                       file=where) from None
        if info.file_size > MAX_CONFIG_BYTES:
            raise fail("unsafe-archive", f"'{path}': its config.json is too large ({info.file_size:,} bytes; "
                       f"at most {MAX_CONFIG_BYTES:,})", file=where)
        for member in members:
            name = member.filename
            if name.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", name) or re.match(r"^[A-Za-z]:", name):
                raise fail("unsafe-archive", f"'{path}' holds a member with an unsafe name: {name!r}",
                           "a .keras archive written by Keras has only plain member names", file=where)
            if member.file_size > MAX_RATIO * max(member.compress_size, 1) and member.file_size > 1024 * 1024:
                raise fail("unsafe-archive", f"'{path}': member {name!r} inflates {member.file_size:,} bytes from "
                           f"{member.compress_size:,} (a zip bomb?)", file=where)
        config = _json(_bounded_read(archive, info, MAX_CONFIG_BYTES, where), where)
        metadata: dict = {}
        if "metadata.json" in archive.namelist():
            meta_info = archive.getinfo("metadata.json")
            if meta_info.file_size <= MAX_CONFIG_BYTES:
                try:
                    metadata = json.loads(_bounded_read(archive, meta_info, MAX_CONFIG_BYTES, where))
                except ValueError:
                    metadata = {}
    return config, metadata if isinstance(metadata, dict) else {}


def _bounded_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
    """A member's bytes, refusing it as soon as it inflates past ``limit`` (the header may lie)."""
    chunks, total = [], 0
    with archive.open(info) as handle:
        while True:
            chunk = handle.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise fail("unsafe-archive", f"'{where}': {info.filename} inflates past {limit:,} bytes", file=where)
            chunks.append(chunk)
    return b"".join(chunks)


def _json(data: bytes | str, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise fail("bad-config", f"'{where}' is not valid JSON: {exc}", file=where) from None


def read_json_config(path: FsPath) -> dict:
    """A ``model.to_json()`` file (Keras 3, or Keras 2's format where Keras 3 reads it)."""
    where = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise fail("file-unreadable", f"cannot read '{path}': {exc.strerror or exc}", file=where) from None
    if size > MAX_CONFIG_BYTES:
        raise fail("unsafe-archive", f"'{path}' is too large ({size:,} bytes; at most {MAX_CONFIG_BYTES:,})",
                   file=where)
    return _json(path.read_bytes(), where)


def check_classes(config: Any, where: str, plugin_classes: set[str]) -> None:
    """Refuse a config naming a class that runs code or is not Keras' own (or an enabled plugin's):
    the policy of ``model:`` nodes (:mod:`graphspec.keras_config`), Keras 2 modules included."""
    refusal = first_refusal(config, allowed_classes=plugin_classes, module_roots=LEGACY_MODULES)
    if refusal is None:
        return
    layer, class_name = refusal.layer_name, refusal.class_name
    if refusal.kind in ("unsafe-class", "vocabulary-file"):
        what = "runs code or reads files" if refusal.kind == "unsafe-class" else "reads its vocabulary from a file"
        raise fail("unsafe-model", f"{where}: layer '{layer}' is a {class_name}, which {what}",
                   "rewrite it as layers or op: nodes; graphspec never imports it", file=where)
    if refusal.kind == "foreign-class":
        raise fail("unknown-class", f"{where}: layer '{layer}' is a '{class_name}' from module "
                   f"'{refusal.module}', which is not a Keras class",
                   "enable the plugin that provides it: graphspec import ... --plugin MODULE "
                   "(see docs/plugins.md)", file=where)
    raise fail("unknown-class", f"{where}: layer '{layer}' is the registered object "
               f"'{refusal.registered_name}', not a Keras class",
               "enable the plugin that provides it: --plugin MODULE (see docs/plugins.md)", file=where)


MAX_WEIGHTS_BYTES = 8 * 1024 ** 3


def copy_archive_weights(path: FsPath, target: FsPath) -> None:
    """Copy a ``.keras`` archive's ``model.weights.h5`` to ``target`` (bounded; the archive checked first)."""
    from graphspec.files import AtomicFile

    read_archive(path)  # the member-name and zip-bomb checks
    with zipfile.ZipFile(path) as archive:
        try:
            info = archive.getinfo("model.weights.h5")
        except KeyError:
            raise fail("no-weights", f"'{path}' has no model.weights.h5", file=str(path)) from None
        if info.file_size > MAX_WEIGHTS_BYTES:
            raise fail("unsafe-archive", f"'{path}': model.weights.h5 is too large ({info.file_size:,} bytes)",
                       file=str(path))
        with AtomicFile(target, suffix=".weights.h5") as tmp, archive.open(info) as src, open(tmp, "wb") as out:
            total = 0
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_WEIGHTS_BYTES:
                    raise fail("unsafe-archive", f"'{path}': model.weights.h5 inflates past its bound", file=str(path))
                out.write(chunk)
