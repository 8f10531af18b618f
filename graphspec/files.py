"""Files: the paths a spec may name, and writing results atomically.

A spec may come from an untrusted pull request, so every path it gives (saved models,
training data) is relative to the spec's folder and may not leave it — no absolute
paths, no ``~``, no ``..`` or symbolic link out of it. ``graphspec check`` applies the
same rule as ``build`` and ``train``, so CI flags an escaping path without TensorFlow.

Everything graphspec writes (models, run directories, predictions) goes to a temporary
file in the target's folder, is fsynced and renamed: a crash never leaves a truncated file.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path as FsPath
from typing import Any

from graphspec.errors import Diagnostic, DiagnosticSink, GraphspecError, Path


def cannot_write(target: FsPath, exc: OSError, error_type: type[GraphspecError] = GraphspecError) -> GraphspecError:
    """The error for an output that cannot be written (a missing folder, a directory, no permission)."""
    import errno

    hint = ("free some space on that disk" if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            else "check that the folder exists and is writable, and the path is not a folder")
    return error_type([Diagnostic(code="cannot-write", file=str(target),
                                  message=f"cannot write '{target}': {exc.strerror or exc}", hint=hint)])


MAX_NAME_BYTES = 255
"""Longest file or folder name a path in a spec may use (NAME_MAX of common file systems)."""
MAX_PATH_BYTES = 4095
"""Longest path a spec may give, in bytes (PATH_MAX less the terminating NUL)."""


def _unusable_path(raw: str) -> str | None:
    """Why the system could not take ``raw`` as a path (a NUL byte, too long), or None."""
    if not raw:
        return "is an empty path"
    if "\x00" in raw:
        return "holds a NUL character, which no file name can"
    encoded = raw.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PATH_BYTES:
        return f"is too long ({len(encoded):,} bytes; at most {MAX_PATH_BYTES:,})"
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > MAX_NAME_BYTES:
        return f"is too long: a name in it has {len(longest):,} bytes (at most {MAX_NAME_BYTES})"
    return None


def confined_path(raw: str, base: FsPath, where: Path, sink: DiagnosticSink, *, what: str) -> FsPath | None:
    """``raw`` resolved under ``base``, or None (with a located error) if it would leave it or is unusable."""
    why = _unusable_path(raw)
    if why is not None:
        sink.error("bad-path", f"the path '{raw[:100]}{'...' if len(raw) > 100 else ''}' {why}", where,
                   f"give the path of {what} relative to the spec's folder")
        return None
    candidate = FsPath(raw)
    if candidate.is_absolute() or raw.startswith("~"):
        sink.error("path-outside-project", f"'{raw}' is an absolute path", where,
                   f"give the path of {what} relative to the spec's folder")
        return None
    try:
        base = base.resolve()
        target = (base / candidate).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a symlink loop, an unreadable folder on the way
        sink.error("bad-path", f"the path '{raw}' cannot be followed: {getattr(exc, 'strerror', None) or exc}",
                   where, f"give the path of {what} relative to the spec's folder")
        return None
    if not target.is_relative_to(base):
        sink.error("path-outside-project", f"'{raw}' leaves the spec's folder", where,
                   f"{what} must live in the spec's folder or below it")
        return None
    return target


def spec_data_paths(train: dict) -> list[tuple[Path, str]]:
    """Every file or folder path a (plain-data) train section names, with its data path."""
    found: list[tuple[Path, str]] = []

    def source(value, path: Path) -> None:
        if not isinstance(value, dict):
            return
        for key in ("npz", "csv", "images"):
            if isinstance(value.get(key), str):
                found.append((path + (key,), value[key]))
        records = value.get("tfrecord")
        if isinstance(records, str):
            found.append((path + ("tfrecord",), records))
        elif isinstance(records, list):
            found.extend((path + ("tfrecord", i), r) for i, r in enumerate(records) if isinstance(r, str))

    source(train.get("data"), ("train", "data"))
    validation = train.get("validation")
    if isinstance(validation, dict):
        source(validation.get("data"), ("train", "validation", "data"))
    return found


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def fix_mode(path: FsPath) -> None:
    """Give a file written through ``mkstemp`` (mode 0600) the usual mode (0666 less the umask)."""
    try:
        os.chmod(path, _MODE)
    except OSError:
        pass


def fsync_dir(path: FsPath) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> FsPath:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename, fsync folder)."""
    with AtomicFile(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
    return FsPath(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> FsPath:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, data: Any) -> FsPath:
    return atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False, allow_nan=True) + "\n")


@functools.cache
def _host_tag() -> str:
    """A short tag of this host, for temporary files' names: made when graphspec first writes (``check``,
    which writes nothing, then never imports :mod:`socket`)."""
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def temp_prefix(name: str) -> str:
    """The start of a temporary file's name for ``name``: the host and process writing it, so that what a
    killed process left can be told from a write in flight (``.model.keras.3fa2c1-4242.``)."""
    return f".{name}.{_host_tag()}-{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours
        return True
    return True


def remove_stale_temps(folder: FsPath, name: str) -> None:
    """Delete the temporary files of earlier writes of ``name`` whose process, on this host, is gone (killed
    between writing and renaming). A temporary file of another host, or of a live process, is left alone."""
    import re

    pattern = re.compile(re.escape(f".{name}.{_host_tag()}-") + r"(\d+)\.")
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(f".{name}.{_host_tag()}-")]
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                import shutil

                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


class AtomicFile:
    """``with AtomicFile(path) as tmp_path:`` — write to ``tmp_path``; renamed onto ``path`` on success.

    The temporary file is ``.NAME.<host>-<pid>.XXXXXXXX<suffix>`` in the target's folder; one that a
    killed process left is deleted by the next write of the same target (:func:`remove_stale_temps`)."""

    def __init__(self, path: str | os.PathLike, suffix: str = ".tmp",
                 error_type: type[GraphspecError] = GraphspecError):
        self.target = FsPath(path)
        self.suffix = suffix
        self.error_type = error_type
        self.tmp: FsPath | None = None

    def __enter__(self) -> FsPath:
        import tempfile  # here: what only reads specs (check) never needs it

        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.target.parent, self.target.name)
            fd, tmp = tempfile.mkstemp(dir=self.target.parent, prefix=temp_prefix(self.target.name), suffix=self.suffix)
        except OSError as exc:
            raise cannot_write(self.target, exc, self.error_type) from None
        os.close(fd)
        self.tmp = FsPath(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            try:
                with open(self.tmp, "rb") as handle:
                    os.fsync(handle.fileno())
                os.chmod(self.tmp, _MODE)
                os.replace(self.tmp, self.target)
            except OSError as error:  # e.g. the target is a folder
                self.tmp.unlink(missing_ok=True)
                raise cannot_write(self.target, error, self.error_type) from None
            fsync_dir(self.target.parent)
            return None
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, GraphspecError):
            # Writing the temporary file failed (a full disk, a lost mount): the target is untouched.
            raise cannot_write(self.target, exc, self.error_type) from None
        return None
