"""Paths the engine writes, built from a folder and a name: never outside the folder."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def inside(folder: Path, relative: str | Path) -> Path | None:
    """``folder / relative`` if it lies inside ``folder`` (symbolic links resolved), else
    None, logged. Names are the engine's own, but a name that ever came from outside
    (``../``, an absolute path, a NUL) must not pick where a file is written."""
    text = str(relative)
    if not text or "\0" in text:
        log.error("refused to build a path in %s from %r", folder, text[:80])
        return None
    try:
        root = folder.resolve()
        path = (folder / relative).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a name too long
        log.error("refused path %r in %s: %s", text[:80], folder, e)
        return None
    if path == root or not path.is_relative_to(root):
        log.error("refused path %r: outside %s", text[:80], folder)
        return None
    return path
