"""Coverage-guided fuzzing of the Twilio Media Streams message parsers.

The input is one WebSocket message. As a text message (the bytes decoded as UTF-8, as
aiohttp does, bad sequences replaced) it goes to parse_start and parse_message; as a binary
one, which Twilio never sends, both must refuse it. Invariants (any other exception, or a
failed assert, is a crash): a well-typed start, event or None, else a ProtocolError whose
text is short and, for a key, says nothing of its content. Run:
.venv/bin/python fuzz/fuzz_twilio.py -max_total_time=600 fuzz/corpus/twilio (docs/fuzzing.md).
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import atheris
from aiohttp import WSMsgType

with atheris.instrument_imports(include=["ivr"]):
    from invariants import check_event, parse

    from ivr.telephony import ProtocolError, twilio


def check(data: bytes) -> int:
    """Assert the invariants on one input; how many starts and events it gave."""
    msg = SimpleNamespace(type=WSMsgType.TEXT, data=data.decode("utf-8", "replace"))
    got = 0
    start = parse(twilio.parse_start, msg)
    if isinstance(start, dict):
        assert set(start) == {"stream_sid", "call_sid", "caller", "locale"}
        assert start["stream_sid"] and isinstance(start["stream_sid"], str)
        assert isinstance(start["call_sid"], str) and isinstance(start["caller"], str)
        assert start["locale"] is None or isinstance(start["locale"], str)
        # Accepted only in the one format bidirectional streams carry.
        assert json.loads(msg.data)["start"]["mediaFormat"]["encoding"] == "audio/x-mulaw"
        got += 1
    else:
        assert start is None or isinstance(start, ProtocolError)
    event = parse(twilio.parse_message, msg)
    if not isinstance(event, ProtocolError):
        check_event(event)
        got += event is not None
    binary = SimpleNamespace(type=WSMsgType.BINARY, data=data)
    assert isinstance(parse(twilio.parse_start, binary), ProtocolError)
    assert isinstance(parse(twilio.parse_message, binary), ProtocolError)
    return got


def TestOneInput(data: bytes) -> None:
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
