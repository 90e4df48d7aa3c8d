"""Asterisk AudioSocket: TCP frames of kind (1 byte), length (2 bytes, big-endian), payload.

Kinds: 0x00 hangup, 0x01 the call's UUID (first frame), 0x03 a DTMF key (ASCII),
0x10 audio (signed linear 16-bit 8 kHz mono, little-endian), 0xff error. Asterisk plays
what it receives as it arrives, so prompts are sent paced at real time, 20 ms a frame,
and "stop sending" is how a prompt is cut off on barge-in.

The protocol carries no caller number: the dialplan registers it first with
``POST /audiosocket/calls`` ({"uuid", "caller", "locale"}), then runs
``AudioSocket(${UUID},host:port)`` (docs/telephony.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import uuid
from collections.abc import Callable
from typing import Any

from ivr.core.report import CallReport
from ivr.telephony import CallHost, Limits, ProtocolError
from ivr.voice.audio import FRAME_BYTES, FRAME_MS, frames
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, InboundEvent, PlaybackDone

log = logging.getLogger(__name__)

KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10  # 8 kHz; 0x11-0x18 are higher rates, which this engine does not take
KIND_ERROR = 0xFF
DTMF_DIGITS = set(b"0123456789*#")
LEAD_FRAMES = 3  # sent ahead of real time so Asterisk's jitter never runs dry


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader, limits: Limits) -> tuple[int, bytes]:
    kind, length = struct.unpack(">BH", await reader.readexactly(3))
    if length > limits.max_message_bytes:
        raise ProtocolError(f"frame of {length} bytes is over the {limits.max_message_bytes} cap")
    return kind, await reader.readexactly(length) if length else b""


def parse_frame(kind: int, payload: bytes) -> InboundEvent | None:
    if kind == KIND_AUDIO:
        if len(payload) % 2:
            raise ProtocolError(f"audio of {len(payload)} bytes is not whole 16-bit samples")
        return AudioIn(payload) if payload else None
    if kind == KIND_DTMF:
        # A bad key entry is never echoed into errors or logs: it may be part of a PIN.
        if len(payload) != 1 or payload[0] not in DTMF_DIGITS:
            raise ProtocolError(f"dtmf payload of {len(payload)} bytes is not one key")
        return DigitIn(chr(payload[0]))
    if kind == KIND_HANGUP:
        return CallerHangup("hangup")
    if kind == KIND_ERROR:
        return CallerHangup(f"asterisk error {payload.hex() or 'unspecified'}")
    if 0x11 <= kind <= 0x18:
        raise ProtocolError(f"audio kind 0x{kind:02x} is not 8 kHz slin; set the channel to "
                            "slin (8 kHz) for AudioSocket")
    raise ProtocolError(f"unknown frame kind 0x{kind:02x}")


class AudioSocketOutput:
    """``CallOutput`` for Asterisk: a player task paces prompts at 20 ms a frame and
    reports each prompt as heard when its last frame is out."""

    def __init__(self, writer: asyncio.StreamWriter, limits: Limits,
                 push: Callable[[InboundEvent], None]) -> None:
        self.writer = writer
        self.limits = limits
        self._push = push
        self._queue: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue(maxsize=8)
        self._player = asyncio.create_task(self._play_queued())
        self._cut = asyncio.Event()
        self._closed = False

    async def play(self, pcm: bytes, mark: str, text: str) -> None:
        if not self._closed:
            await self._queue.put((pcm, mark))  # bounded: a prompt pile-up waits here

    async def clear(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self._cut.set()

    async def end(self, report: CallReport) -> None:
        self._closed = True  # the player stops at its next frame even if the cancel is lost
        self._player.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._player
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError):
                self.writer.write(frame(KIND_HANGUP))
                await asyncio.wait_for(self.writer.drain(), self.limits.send_timeout_s)
            self.writer.close()

    async def _play_queued(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            pcm, mark = await self._queue.get()
            self._cut.clear()
            due = loop.time()
            for n, chunk in enumerate(frames(pcm, FRAME_BYTES)):
                # Closed too: Python 3.10's wait_for returns instead of raising a cancel
                # that lands as the drain completes, and the call's end would wait for the
                # rest of every queued prompt, in real time.
                if self._cut.is_set() or self._closed:
                    break
                try:
                    self.writer.write(frame(KIND_AUDIO, chunk))
                    await asyncio.wait_for(self.writer.drain(), self.limits.send_timeout_s)
                except (ConnectionError, asyncio.TimeoutError):
                    self._push(CallerHangup("dead"))
                    return
                due += FRAME_MS / 1000
                if n >= LEAD_FRAMES:
                    await asyncio.sleep(max(0.0, due - loop.time() - LEAD_FRAMES * FRAME_MS / 1000))
            else:
                self._push(PlaybackDone(mark))


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: CallHost,
                 registered: Callable[[str], dict[str, Any]]) -> None:
    """One Asterisk call, from the UUID frame to the hangup."""
    limits = host.limits
    try:
        kind, payload = await asyncio.wait_for(read_frame(reader, limits), limits.first_message_s)
        if kind != KIND_UUID or len(payload) != 16:
            raise ProtocolError(f"the first frame must be the 16-byte UUID (kind 0x{kind:02x})")
    except (ProtocolError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
        reason = str(e) or type(e).__name__
        host.malformed("audiosocket", reason)
        log.warning("audiosocket connection refused: %s", reason)
        writer.write(frame(KIND_ERROR, b"\x01"))
        writer.close()
        return
    call_uuid = str(uuid.UUID(bytes=payload))
    info = registered(call_uuid)
    # The UUID keys the dialplan's registration only; the call gets the engine's own id.
    session = host.start_call(caller_id=info.get("caller", ""), locale=info.get("locale"),
                              external_id=call_uuid, transport="audiosocket")
    session.output = AudioSocketOutput(writer, limits, session.push)
    await host.run_call(session, _pump(reader, session.push, limits, session.call_id,
                                       lambda reason: host.malformed("audiosocket", reason)))


async def _pump(reader: asyncio.StreamReader, push: Callable[[InboundEvent], None],
                limits: Limits, call_id: str, on_malformed: Callable[[str], None]) -> None:
    """Frames into the session until hangup or the socket ends (either is a hangup).

    A frame with a bad payload is skipped; a frame whose header cannot be trusted (over
    the size cap) ends the connection, since the stream can no longer be framed."""
    malformed = 0
    try:
        while True:
            kind, payload = await read_frame(reader, limits)
            try:
                event = parse_frame(kind, payload)
            except ProtocolError as e:
                malformed += 1
                on_malformed(str(e))
                log.warning("call %s: malformed frame skipped: %s", call_id, e)
                if malformed > limits.max_malformed:
                    break
                continue
            if event is not None:
                push(event)
                if isinstance(event, CallerHangup):
                    return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    except ProtocolError as e:
        on_malformed(str(e))
        log.warning("call %s: %s; closing", call_id, e)
    push(CallerHangup("disconnected"))
