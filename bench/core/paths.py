"""Safe names and paths: the one place where a string from outside (an image id, a file stem, a model or
metric name) becomes a path component, and where a resolved path is checked to stay under its root.

Names made only of ``[A-Za-z0-9._@-]`` (and not ``.`` or ``..``, at most :data:`MAX_COMPONENT` characters)
are kept as they are, so COCO ids, registry names and ordinary file stems map to themselves and every stage
that joins ``<id>.png`` agrees. Anything else (a ``/``, a NUL, a space, a non-UTF-8 byte, an empty string)
maps to a readable slug plus the first 12 hex digits of the sha256 of the original text, which cannot
contain a separator, cannot climb out of a folder and stays distinct for distinct texts.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from colorbench.core.errors import BenchError

SAFE_NAME = re.compile(r"[A-Za-z0-9._@-]+")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._@-]+")
#: Longest name kept as is; file names must stay under the 255-byte limit of common file systems with a suffix.
MAX_COMPONENT = 128
DIGEST_CHARS = 12


def text_bytes(text: str) -> bytes:
    """The bytes a string stands for: file names decoded by Python keep undecodable bytes as lone surrogates
    (surrogateescape), other lone surrogates (from JSON escapes) are kept as their UTF-8-like encoding."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def is_safe_component(text: str) -> bool:
    """Whether ``text`` is kept unchanged by :func:`safe_component`."""
    return (len(text) <= MAX_COMPONENT and text not in (".", "..") and SAFE_NAME.fullmatch(text) is not None)


def safe_component(text: str) -> str:
    """``text`` as one path component that cannot leave its folder: unchanged when already safe, otherwise
    ``<slug>-<sha256[:12]>`` where the slug keeps the safe characters (runs of others become ``_``)."""
    if is_safe_component(text):
        return text
    slug = _UNSAFE_RUN.sub("_", text).strip("._")[:MAX_COMPONENT - DIGEST_CHARS - 1] or "name"
    return f"{slug}-{hashlib.sha256(text_bytes(text)).hexdigest()[:DIGEST_CHARS]}"


def printable(text: str) -> str:
    """A file name or other outside text as one printable, UTF-8-encodable line for tables and messages:
    undecodable bytes and lone surrogates become ``\\xNN`` escapes, control characters ``\\xNN`` / ``\\uNNNN``."""
    decoded = text_bytes(text).decode("utf-8", "backslashreplace")
    return "".join(ch if unicodedata.category(ch) != "Cc" else ascii(ch)[1:-1] for ch in decoded)


def printable_name(folder: Path) -> str:
    """The printable name (:func:`printable`) of a folder as it resolves: what names a model or a results folder
    after the folder it was read from (``bench score``'s default model names)."""
    return printable(folder.resolve().name)


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``, with symlinks and ``..`` resolved, lies under ``root`` (also resolved)."""
    try:
        resolved, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    except (OSError, ValueError):
        return False
    return resolved == base or base in resolved.parents


def child(root: Path, *names: str) -> Path:
    """``root / n1 / n2 ...`` with every name through :func:`safe_component`, checked to stay under ``root``
    (a symlink already inside the folder could still point out of it)."""
    path = root.joinpath(*(safe_component(name) for name in names))
    if not inside(root, path):
        raise BenchError(f"refusing to use {printable(str(path))}: it resolves outside {printable(str(root))}")
    return path
