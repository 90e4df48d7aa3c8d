"""Errors the engine reports to a user as one clear line (never a traceback)."""

from __future__ import annotations

import os
from pathlib import Path


class IvrError(Exception):
    """Base of every error the CLI prints as ``error: <message>`` and exits non-zero."""


class DataFileError(IvrError):
    """A trainer-maintained data file (YAML) is missing or malformed."""


class ScriptError(IvrError):
    """A simulated call script is malformed."""


class ModelNotFoundError(IvrError):
    """No trained model is where the engine looks for one."""


class DeliveryError(IvrError):
    """A handoff could not be delivered to the ACD webhook."""


def shown(path: str | os.PathLike[str]) -> str:
    """A path as an error message may name it: relative to its project (the nearest folder
    up with domain.yml and nlu_data/), else by its name alone. Messages reach console pages,
    HTTP clients and logs shown to users, none of which has any business learning where the
    server keeps its files; a relative path (one a user typed) is kept as given."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    for folder in p.parents:
        if (folder / "domain.yml").is_file() and (folder / "nlu_data").is_dir():
            return str(p.relative_to(folder))
    return p.name
