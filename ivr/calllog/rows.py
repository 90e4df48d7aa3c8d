"""The rows the call log writes, from events: the ``calls`` summary columns a batch of
events changes, and a dead letter's text, storable whatever the event held; and whether a
text can name a call at all. Pure functions, so that the store (ivr/calllog/store.py) keeps
to its queries.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterable
from typing import Any

from ivr.calllog.schema import COMPLETE, calls
from ivr.core.events import (
    TEXT_MAX,
    CallEnded,
    CallEvent,
    CallStarted,
    LanguageChosen,
    RecordingStarted,
    encode,
)

# Columns of ``calls`` that these events fill in from their fields of the same name.
SUMMARY_FROM: dict[type[CallEvent], tuple[str, ...]] = {
    CallStarted: ("transport", "caller", "locale", "model", "external_id"),
    LanguageChosen: ("locale",),
    RecordingStarted: ("recording",),
    CallEnded: ("transport", "caller", "locale", "dialect", "outcome", "intent", "queue",
                "reason", "external_id"),
}


def searchable(text: str) -> bool:
    """Whether a string can name a call at all: PostgreSQL refuses a NUL or a lone surrogate
    in a query (an error, not "no such call"), and no id is longer than its column."""
    if "\0" in text or len(text) > TEXT_MAX:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def summaries(batch: Iterable[CallEvent]) -> dict[str, dict[str, Any]]:
    """The ``calls`` columns a batch of events changes, per call."""
    out: dict[str, dict[str, Any]] = {}
    for e in batch:
        values = out.setdefault(e.call_id, {})
        values["last_event_at"] = e.at
        for column in SUMMARY_FROM.get(type(e), ()):
            value = getattr(e, column)
            if value is not None:
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                # The edge cuts what comes from outside; this is the last defence, so that
                # no value longer than its column ever makes a whole batch fail.
                values[column] = text[:calls.c[column].type.length]
        if isinstance(e, CallEnded):
            values.update(status=COMPLETE, ended_at=e.at)
    return out


def storable(value: Any, limit: int) -> str:
    """Text every store takes (NULs and lone surrogates escaped), ``limit`` characters at
    most: for the dead letters, which must be writable whatever the event held."""
    text = str(value).replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


def dead_letter_json(event: CallEvent) -> str:
    """An event as ASCII JSON (lone surrogates and NULs escaped); what JSON cannot hold
    (a circular or too deeply nested value) as a short repr."""
    kind, data = encode(event)
    record = {"call_id": event.call_id, "kind": kind, "at": event.at, "data": data}
    try:
        return json.dumps(record, ensure_ascii=True, default=repr)
    except (ValueError, RecursionError):
        return json.dumps({"call_id": storable(event.call_id, TEXT_MAX),
                           "kind": storable(kind, TEXT_MAX),
                           "repr": reprlib.repr(data)}, ensure_ascii=True)
