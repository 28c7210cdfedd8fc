"""One output folder is one command's results, written by one process at a time.

:func:`claim` is entered by every command that writes a run folder:

- the folder's identity (which command made it: ``run``, ``study`` or ``score``, and what defines its results)
  is stored in :data:`IDENTITY_FILE`; a folder made by a different command is refused with a message naming
  ``--out``, so that ``study`` or ``score`` never overwrite a ``run``, nor one ``run`` another's tables;
- an exclusive ``flock`` on :data:`LOCK_FILE` stops a second process writing the same folder (the kernel
  releases it when the holder dies, even by SIGKILL, so an interrupted run can always be resumed);
- a folder that the command created and left holding nothing but these two files (the command failed before
  writing anything) is removed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes

IDENTITY_FILE = ".colorbench-folder.json"
LOCK_FILE = ".colorbench.lock"
_OWN_FILES = {IDENTITY_FILE, LOCK_FILE}


def describe(identity: Mapping[str, object]) -> str:
    """A short account of a folder's identity for messages, e.g. ``run of gray,baseline0 on sample:test``."""
    models = identity.get("models")
    what = f" of {','.join(map(str, models))}" if isinstance(models, list) and models else ""
    return f"{identity.get('command')}{what} ({identity.get('data')})"


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Hold the folder's exclusive lock for the block; a held lock raises :class:`BenchError` at once."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise BenchError(f"{folder} is being written by another colorbench process (pid {holder}, lock "
                             f"{path}); wait for it to finish or pass another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def claim(folder: Path, identity: Mapping[str, object], *, writer: bool = True) -> Iterator[Path]:
    """Check, lock and label ``folder`` for a command with ``identity`` (JSON-able); with ``writer`` False (the
    other processes under torchrun, which wait for rank 0) nothing is checked. Yields the folder."""
    if not writer:
        yield folder
        return
    existed = folder.exists()
    if existed and not folder.is_dir():
        raise BenchError(f"--out {folder} is a file, not a folder")
    stored = _stored_identity(folder) if existed else None
    wanted = json.loads(json.dumps(identity, default=str))
    if stored is not None and stored != wanted:
        raise BenchError(f"{folder} holds the results of another command ({describe(stored)}), not of this "
                         f"{describe(wanted)}; pass --out with a new folder, or repeat that command to resume it")
    if stored is None and existed and any(p.name not in _OWN_FILES for p in folder.iterdir()):
        raise BenchError(f"--out {folder} already holds files that colorbench did not write for this command; "
                         "pass --out with a new or empty folder")
    try:
        with lock(folder):
            if stored is None:
                atomic_write_bytes(folder / IDENTITY_FILE, (json.dumps(wanted, indent=2) + "\n").encode())
            yield folder
    except BaseException:
        if not existed and {p.name for p in folder.iterdir()} <= _OWN_FILES:
            for name in _OWN_FILES:
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()
        raise


def _stored_identity(folder: Path) -> dict[str, object] | None:
    path = folder / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path} is not valid JSON ({exc}); pass --out with a new folder") from exc
    return stored if isinstance(stored, dict) else None
