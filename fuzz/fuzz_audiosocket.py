"""Coverage-guided fuzzing of the Asterisk AudioSocket reader and frame parser.

The input is the byte stream a peer on the AudioSocket port sends. Invariants (any other
exception, or a failed assert, is a crash): every frame read re-encodes to exactly the
bytes it was read from; reading stops only at the end of the stream or at a header over
the size cap (with its payload left unread); each frame parses to an engine event, None or
a ProtocolError; a refused key's error says nothing of its content (it may be part of a
PIN). Run: .venv/bin/python fuzz/fuzz_audiosocket.py -max_total_time=600 fuzz/corpus/audiosocket
(docs/fuzzing.md).
"""

from __future__ import annotations

import asyncio
import struct
import sys

import atheris

with atheris.instrument_imports(include=["ivr"]):
    from invariants import check_error, check_event

    from ivr.telephony import Limits, ProtocolError, audiosocket

LIMITS = Limits(max_message_bytes=2048)  # low, so that oversize headers are within reach
_loop = asyncio.new_event_loop()


async def _read(data: bytes) -> tuple[list[tuple[int, bytes]], BaseException, bytes]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames: list[tuple[int, bytes]] = []
    try:
        while True:
            frames.append(await audiosocket.read_frame(reader, LIMITS))
    except (ProtocolError, asyncio.IncompleteReadError) as e:
        return frames, e, await reader.read()


def check(data: bytes) -> int:
    """Assert the invariants on one input; the number of engine events it gave."""
    frames, end, unread = _loop.run_until_complete(_read(data))
    consumed = b"".join(audiosocket.frame(kind, payload) for kind, payload in frames)
    assert data.startswith(consumed)
    rest = data[len(consumed):]
    if isinstance(end, ProtocolError):
        # Refused on its header alone: over the cap, and its payload never read.
        assert struct.unpack(">H", rest[1:3])[0] > LIMITS.max_message_bytes
        assert unread == rest[3:]
    else:
        assert len(rest) < 3 or struct.unpack(">H", rest[1:3])[0] > len(rest) - 3
    events = 0
    for kind, payload in frames:
        try:
            event = audiosocket.parse_frame(kind, payload)
        except ProtocolError as e:
            check_error(e, dtmf=r"dtmf payload of \d+ bytes is not one key")
            continue
        check_event(event)
        events += event is not None
    return events


def TestOneInput(data: bytes) -> None:
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
