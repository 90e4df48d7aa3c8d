"""The call's events: everything that happens on a call, on every transport, as an
ordered stream (docs/calllog.md lists the kinds).

Producers (``ivr.dialogue.call.Call`` for the dialogue, ``VoiceSession`` and its processors for
audio, keys and prompts) emit ``CallEvent``s, already masked; observers (the call log's
``CallRecorder``, the metrics) take them. Every layer imports them from here: the event
type belongs to no one layer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallEvent:
    """Something that happened on a call (already masked)."""

    call_id: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


EventSink = Callable[[CallEvent], None]
Emit = Callable[..., None]  # emit(kind, **data) for one call


def emitter(sink: EventSink | None, call_id: str) -> Emit:
    """``emit(kind, **data)`` for one call, into ``sink`` (nowhere without one)."""
    if sink is None:
        return lambda kind, **data: None
    return lambda kind, **data: sink(CallEvent(call_id, kind, data))


TEXT_MAX = 255  # what the call log's text columns hold (ivr/calllog/schema.py)


def clip(value: Any, what: str, limit: int = TEXT_MAX) -> str:
    """A free-text value from outside (a caller id from a transport's start message or a
    command line) as the engine keeps it: text, at most ``limit`` characters, without what
    no store can hold (NUL, lone surrogates). What is cut is said in the server log."""
    text = "" if value is None else str(value)
    cleaned = text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")
    if len(cleaned) > limit:
        log.warning("%s of %d characters cut to %d: %.40r...", what, len(cleaned), limit,
                    cleaned)
        return cleaned[:limit]
    if cleaned != text:
        log.warning("%s: NUL or unpaired surrogate characters removed", what)
    return cleaned


def end_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the ``end`` event keeps of a call's result (``Call.result()``)."""
    keys = ("transport", "caller", "locale", "dialect", "outcome", "intent", "served", "queue",
            "reason", "priority", "skills", "external_id")
    return {k: result[k] for k in keys if result.get(k) not in (None, [])}
