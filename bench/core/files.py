"""Files written so that a reader never sees half of one and no write follows a link: the atomic write every
cache, record and report file goes through, with the permissions a plain ``open`` would give; the appending
open of logs and records; and the sha256 that names a file's bytes in provenance and cache keys.

No file is written through a symbolic link the harness did not create (issue 22): an atomic write refuses a
target that is a symlink (the rename would replace the link, which a user may have meant as a redirection),
and an appending open passes ``O_NOFOLLOW``. An ``OSError`` while writing (a full or read-only disk) becomes one
:class:`WriteError` naming the file and saying that what was written before is kept.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from colorbench.core.errors import IncompleteError


class WriteError(IncompleteError):
    """A file could not be written (disk full, read-only folder, a symlink or folder in its place); the files
    written before it are kept, so the same command resumes once the cause is fixed."""


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def process_umask() -> int:
    """The process umask, read without changing it where /proc allows (other threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_error(path: Path, exc: OSError) -> WriteError:
    """The one-line error of a failed write of ``path``."""
    cause = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return WriteError(f"cannot write {path}: {cause}; everything written before is kept, rerun the same command "
                      "to resume once this is fixed")


def refuse_link(path: Path) -> None:
    """Refuse to write ``path`` when it is a symlink (which would carry the write elsewhere) or a folder."""
    if path.is_symlink():
        raise WriteError(f"refusing to write {path}: it is a symbolic link colorbench did not create; remove it")
    if path.is_dir():
        raise WriteError(f"cannot write {path}: a folder is in its place; move it away and rerun")


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(handle)`` into a temporary file and a rename, so readers never see half a
    file. The file gets the permissions of a plain ``open`` (0666 less the umask), not mkstemp's 0600."""
    refuse_link(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            os.fchmod(handle.fileno(), 0o666 & ~process_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(path, lambda handle: handle.write(data))


def open_appending(path: Path) -> BinaryIO:
    """``path`` opened for reading and appending (created 0666 less the umask), never through a symlink
    (``O_NOFOLLOW``). A failed open becomes :class:`WriteError`; the caller turns errors of its own writes into
    :func:`write_error` (an exception of the code around them must keep its own file name)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.fdopen(os.open(path, flags, 0o666), "r+b")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WriteError(f"refusing to write {path}: it is a symbolic link colorbench did not create; "
                             "remove it") from None
        raise write_error(path, exc) from exc


def append_bytes(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (:func:`open_appending`)."""
    with open_appending(path) as handle:
        try:
            handle.write(data)
            handle.flush()
        except OSError as exc:
            raise write_error(path, exc) from exc
