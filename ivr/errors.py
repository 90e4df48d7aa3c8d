"""Errors the engine reports to a user as one clear line (never a traceback)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Remedy:
    """How to go on after an error, where the CLI and the console say it differently (a
    flag there, a button or tick box here): ``cli`` is appended to the CLI's message as is;
    the console shows the message alone and ``code``'s text in the page's language
    (``remedy.<code>`` in ivr/console/static/i18n/)."""

    code: str
    cli: str


class IvrError(Exception):
    """Base of every error the CLI prints as ``error: <message>`` and exits non-zero.
    ``str(error)`` is the CLI's line; ``message`` and ``remedy`` are the console's parts."""

    def __init__(self, message: str = "", remedy: Remedy | None = None) -> None:
        super().__init__(message + (remedy.cli if remedy else ""))
        self.message = message
        self.remedy = remedy


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
