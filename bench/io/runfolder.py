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
from colorbench.core.files import atomic_write_bytes, open_appending, write_error
from colorbench.core.strictjson import loads_unique

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
    path = folder / LOCK_FILE
    with open_appending(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().decode(errors="replace").strip() or "unknown"
            raise BenchError(f"{folder} is being written by another colorbench process (pid {holder}, lock "
                             f"{path}); wait for it to finish or pass another --out") from None
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()).encode())
            handle.flush()
        except OSError as exc:
            raise write_error(path, exc) from exc
        yield


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
        raise _mismatch(folder, stored, wanted)
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


def _mismatch(folder: Path, stored: Mapping[str, object], wanted: Mapping[str, object]) -> BenchError:
    """The refusal of a folder whose recorded identity is not this command's: another command, or the same one
    with other settings (each named, with its value there and here). A ``score`` folder is defined by its ground
    truth and metric set alone (it gains models, colorbench.pipeline.score_folders), so another ground truth is
    named as such."""
    if stored.get("command") == wanted.get("command") == "score" and stored.get("data") != wanted.get("data"):
        return BenchError(f"--out {folder} holds scores against another {stored.get('data')}, not this "
                          f"{wanted.get('data')}; pass --out with a new folder (a score folder gains models only "
                          "for the same ground-truth files and metric set)")
    if {k: v for k, v in stored.items() if k != "settings"} != {k: v for k, v in wanted.items() if k != "settings"}:
        return BenchError(f"{folder} holds the results of another command ({describe(stored)}), not of this "
                          f"{describe(wanted)}; pass --out with a new folder, or repeat that command to resume it")
    there, here = stored.get("settings"), wanted.get("settings")
    if not isinstance(there, dict) or not isinstance(here, dict):
        return BenchError(f"--out {folder} was made by an earlier colorbench that did not record its settings; "
                          "pass --out with a new folder (its results stay as they are)")
    changed = sorted(set(there) | set(here), key=str)
    shown = "; ".join(f"{k}: {json.dumps(there.get(k))} there, {json.dumps(here.get(k))} here"
                      for k in changed if there.get(k) != here.get(k))
    return BenchError(f"--out {folder} holds results made with other settings ({shown}); pass --out with a new "
                      "folder (without --out, each combination of settings gets its own folder), or repeat the "
                      "command with the folder's settings to resume it")


def _stored_identity(folder: Path) -> dict[str, object] | None:
    path = folder / IDENTITY_FILE
    if not path.is_file():
        return None
    try:
        stored = loads_unique(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path} is not valid JSON ({exc}); pass --out with a new folder") from exc
    return stored if isinstance(stored, dict) else None
