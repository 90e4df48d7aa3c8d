"""What the ``ivr`` commands share: the exit status, opening an engine or the call log,
and reading a time given on the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ivr.errors import IvrError
from ivr.project import Project

EXIT_ERROR = 1
DEFAULT_LOCALE = "zh"


async def open_engine(project: Project, model: Path | None, bank: Any = None):
    """The locale's engine (ivr/dialogue/engine_factory.py): the configured bank unless ``bank``."""
    from ivr.dialogue.engine_factory import load_engine

    path = model or project.live_model()
    say_loading(path)
    return await load_engine(project, path, bank=bank)


async def close_engines(engines: Any) -> None:
    """A bank adapter's connections closed before the program ends
    (ivr/dialogue/engine_factory.py)."""
    from ivr.dialogue.engine_factory import close_engines as close_them

    await close_them(engines)


def say_loading(model: Path) -> None:
    """Say why nothing happens for a few seconds (stderr: stdout stays the results)."""
    if model.is_file():  # (a missing one is the one error line)
        print(f"loading model {model.name}…", file=sys.stderr, flush=True)


def count_failures_in_call_log(engines: Any, recorder: Any) -> None:
    """Failed verifications count in the call log's database, as with `ivr serve`
    (an engine alone counts them in memory)."""
    from ivr.dialogue.lockout import SqlLockout

    lockout = SqlLockout(recorder.store.engine)
    for engine in engines:
        engine.lockout = lockout


def open_call_log(project: Project):
    """The call log's writer for this command's calls ($IVR_CALL_LOG, else var/)."""
    from ivr.calllog.recorder import CallLogSettings, CallRecorder
    from ivr.calllog.store import CallStore

    settings = CallLogSettings.from_env(project.root, ":cli")
    return CallRecorder(CallStore(settings.url), settings.instance, settings.recordings)


def open_store(project: Project):
    """The call log's store, and its settings ($IVR_CALL_LOG, else var/)."""
    from ivr.calllog.recorder import CallLogSettings
    from ivr.calllog.store import CallStore

    settings = CallLogSettings.from_env(project.root)
    return CallStore(settings.url), settings


def parse_when(text: str) -> float:
    """A time for --since/--until: ISO date or date-time (UTC unless it says), or an age
    such as 30m, 12h, 7d."""
    import re
    import time
    from datetime import datetime, timezone

    age = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if age:
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[age.group(2)]
        return time.time() - float(age.group(1)) * seconds
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise IvrError(f"time {text!r}: use 2026-11-24, 2026-11-24T09:30 or an age like 12h, "
                       "7d") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
