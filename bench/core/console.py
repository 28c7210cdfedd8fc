"""How colorbench's messages reach the terminal: ``logging`` records of its packages, one line each on stderr.

Library modules log through ``logging.getLogger(__name__)``; the command lines (``python -m bench``,
``python -m colorbench.reports.check``, the experiment scripts) call :func:`configure` once. A line reads as the
level's word,
a colon and the message: ``note: ...`` (INFO), ``warning: ...``, ``error: ...``; a record may name its own word
with ``extra={"prefix": "interrupted"}``. ``--quiet`` raises the threshold to WARNING. Only the loggers of
colorbench's own packages get the handler, so third-party libraries' records keep their own configuration.
Results that are a command's output (tables, the path of a finished run) are printed to stdout by the command.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

#: The packages whose loggers write through :func:`configure`'s handler.
PACKAGES = ("colorbench",)
#: The word a line starts with, by level.
PREFIXES = {logging.DEBUG: "debug", logging.INFO: "note", logging.WARNING: "warning", logging.ERROR: "error",
            logging.CRITICAL: "error"}


class PrefixFormatter(logging.Formatter):
    """``<prefix>: <message>``, the prefix from the record's ``prefix`` attribute or its level (:data:`PREFIXES`)."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = getattr(record, "prefix", None) or PREFIXES.get(record.levelno, record.levelname.lower())
        return f"{prefix}: {record.getMessage()}"


class _ConsoleHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure` installs (a class of its own, so a second call replaces it). It writes to
    ``sys.stderr`` as it is when a record comes, so a stream swapped later (a test's capture) is honoured."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def configure(*, quiet: bool = False) -> None:
    """Send the records of :data:`PACKAGES` at INFO and above (WARNING and above when ``quiet``) to
    ``sys.stderr`` as ``<prefix>: <message>`` lines; calling it again replaces the handler it installed."""
    handler = _ConsoleHandler()
    handler.setFormatter(PrefixFormatter())
    for package in PACKAGES:
        logger = logging.getLogger(package)
        for old in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
