"""What every protocol parser's output must be, shared by the fuzz targets: an engine event
or nothing, else a ProtocolError that is short and never repeats a key's content (it may be
part of a PIN)."""

from __future__ import annotations

import re
from typing import Any

from ivr.telephony import ProtocolError
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, PlaybackDone


def check_event(event: object) -> None:
    if isinstance(event, AudioIn):
        assert isinstance(event.pcm, bytes) and event.pcm and len(event.pcm) % 2 == 0
    elif isinstance(event, DigitIn):
        assert event.digit in "0123456789*#" and len(event.digit) == 1
    elif isinstance(event, PlaybackDone):
        assert isinstance(event.mark, str) and event.mark
    elif isinstance(event, CallerHangup):
        assert isinstance(event.reason, str)
    else:
        assert event is None, f"not an engine event: {event!r}"


def check_error(e: ProtocolError, dtmf: str = r"dtmf digit of \d+ characters is not a key"
                ) -> None:
    text = str(e)
    assert text and len(text) <= 200, text[:300]
    if text.startswith("dtmf"):
        assert re.fullmatch(dtmf, text), text


def parse(handler: Any, msg: Any) -> Any:
    """The parser's result, or the ProtocolError it raised (checked)."""
    try:
        return handler(msg)
    except ProtocolError as e:
        check_error(e)
        return e
