"""Scripted calls (``ivr simulate``): the real engine, driven by YAML instead of audio."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ivr.core.events import EventSink, emitter
from ivr.core.inputs import CallerInput, Hangup, Keys, Say, Silence
from ivr.core.report import CallReport
from ivr.dialogue.call import DTMF_KEYS, Call
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.handoff import AcdWebhook
from ivr.errors import ScriptError, shown
from ivr.project import Project
from ivr.yamlfile import read_mapping

_PHONE = re.compile(r"\+?[0-9]{3,15}")
_KINDS = ("say", "dtmf", "silence", "hangup")


@dataclass(frozen=True)
class Script:
    path: Path
    caller: str
    locale: str
    turns: list[CallerInput]


def load_script(path: Path) -> Script:
    """Read and check a call script; any problem is one ``ScriptError`` line."""
    return parse_script(read_mapping(path, ScriptError), path)


def parse_script(data: dict[str, Any], path: Path) -> Script:
    """Check a call script already read from ``path``."""
    caller = str(data.get("caller", "") or "")
    if caller and not _PHONE.fullmatch(caller):
        raise ScriptError(f"{shown(path)}: caller {caller!r} is not a phone number "
                          "(e.g. +8613800000001)")
    locale = str(data.get("locale", "zh"))
    locales = Project.discover().locales()  # those with a config/<locale>.yml: data, not code
    if locale not in locales:
        raise ScriptError(f"{shown(path)}: locale {locale!r} is not one of {', '.join(locales)}")
    raw_turns = data.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise ScriptError(f"{shown(path)}: 'turns' must be a non-empty list")
    turns = [_turn(path, i, t) for i, t in enumerate(raw_turns, start=1)]
    return Script(path, caller, locale, turns)


def _turn(path: Path, index: int, raw: Any) -> CallerInput:
    where = f"{shown(path)}: turn {index}"
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in _KINDS:
        raise ScriptError(f"{where}: expected exactly one of {', '.join(_KINDS)}")
    kind, value = next(iter(raw.items()))
    if kind == "say" and not (isinstance(value, str) and value.strip()):
        raise ScriptError(f"{where}: 'say' needs the caller's words")
    if kind == "dtmf":
        value = str(value)
        if not DTMF_KEYS.fullmatch(value):
            raise ScriptError(f"{where}: dtmf must be keys 0-9, * or #")
    if kind in ("silence", "hangup") and value is not True:
        raise ScriptError(f"{where}: write '{kind}: true'")
    if kind == "say":
        return Say(value)
    if kind == "dtmf":
        return Keys(value)
    return Silence() if kind == "silence" else Hangup()


async def run_script(script: Script, engine: DialogueEngine, acd: AcdWebhook | None = None,
                     call_log: EventSink | None = None) -> CallReport:
    """Play a script through a real call; the handoff, if any, goes to the ACD, and every
    event to ``call_log``."""
    call_id = uuid.uuid4().hex
    emit = emitter(call_log, call_id)
    call = Call(engine, caller_id=script.caller, locale=script.locale, call_id=call_id,
                transport="simulate", emit=emit)
    await call.start()
    for said in script.turns:
        if call.ended:
            break
        await call.take(said)
    # A script that runs out is the caller putting the phone down.
    report = await call.finish(acd, input_ran_out=True)
    return replace(report, script=str(script.path))
