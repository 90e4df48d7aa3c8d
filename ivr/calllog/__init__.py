"""The call log: every call, on every transport, as an ordered stream of events.

Producers (``ivr.call.Call`` for the dialogue, ``VoiceSession`` for audio, keys and
prompts) emit ``CallEvent``s; the ``CallRecorder`` writes them to the ``CallStore`` as they
happen, on its own thread. Everything is masked before it is emitted. docs/calllog.md lists
the event kinds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


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


def end_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What the ``end`` event keeps of a call's result (``Call.result()``)."""
    keys = ("transport", "caller", "locale", "dialect", "outcome", "intent", "served", "queue",
            "reason", "priority", "skills")
    return {k: result[k] for k in keys if result.get(k) not in (None, [])}
