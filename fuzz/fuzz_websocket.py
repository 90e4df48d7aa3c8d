"""Coverage-guided fuzzing of the plain WebSocket protocol's parsers (docs/plain-websocket.md).

The input is one WebSocket message, tried both ways: as a text message (the bytes decoded
as UTF-8, as aiohttp does, bad sequences replaced) through parse_start and parse_message,
and as a binary one (caller audio) through both. Invariants (any other exception, or a
failed assert, is a crash): a well-typed start, event or None, else a ProtocolError whose
text is short and, for a key, says nothing of its content; binary audio is taken whole or
refused for an odd length, and never starts a call. Run:
.venv/bin/python fuzz/fuzz_websocket.py -max_total_time=600 fuzz/corpus/websocket
(docs/fuzzing.md).
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import atheris
from aiohttp import WSMsgType

with atheris.instrument_imports(include=["ivr"]):
    from invariants import check_event, parse

    from ivr.telephony import ProtocolError, websocket
    from ivr.voice.events import AudioIn


def check(data: bytes) -> int:
    """Assert the invariants on one input; how many starts and events it gave."""
    text = SimpleNamespace(type=WSMsgType.TEXT, data=data.decode("utf-8", "replace"))
    got = 0
    start = parse(websocket.parse_start, text)
    if isinstance(start, dict):
        assert set(start) == {"caller", "locale", "call_id"}
        assert isinstance(start["caller"], str)
        assert all(start[k] is None or isinstance(start[k], str) for k in ("locale", "call_id"))
        assert json.loads(text.data).get("encoding", "pcm16") == "pcm16"
        got += 1
    else:
        assert isinstance(start, ProtocolError)
    event = parse(websocket.parse_message, text)
    if not isinstance(event, ProtocolError):
        check_event(event)
        got += event is not None
    binary = SimpleNamespace(type=WSMsgType.BINARY, data=data)
    audio = parse(websocket.parse_message, binary)
    if len(data) % 2:
        assert isinstance(audio, ProtocolError)
    else:
        assert audio == (AudioIn(data) if data else None)
    assert isinstance(parse(websocket.parse_start, binary), ProtocolError)
    return got


def TestOneInput(data: bytes) -> None:
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
