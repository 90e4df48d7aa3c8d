"""Wire formats at the edge: each protocol's frames to engine events, and sending limits."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from conftest import free_port

from ivr.telephony import (
    Limits,
    ProtocolError,
    WebSocketOutput,
    audiosocket,
    twilio,
    websocket,
)
from ivr.voice.audio import pcm_to_ulaw
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, PlaybackDone

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")


def text(obj) -> SimpleNamespace:
    return SimpleNamespace(type=WSMsgType.TEXT, data=json.dumps(obj))


def test_twilio_messages_become_engine_events() -> None:
    pcm = struct.pack("<4h", 0, 1000, -1000, 32000)
    media = {"event": "media", "media": {"track": "inbound",
                                         "payload": base64.b64encode(pcm_to_ulaw(pcm)).decode()}}
    event = twilio.parse_message(text(media))
    assert isinstance(event, AudioIn) and len(event.pcm) == len(pcm)
    assert twilio.parse_message(text({"event": "dtmf", "dtmf": {"digit": "#"}})) == DigitIn("#")
    assert twilio.parse_message(text({"event": "mark", "mark": {"name": "p-1"}})) == \
        PlaybackDone("p-1")
    assert isinstance(twilio.parse_message(text({"event": "stop"})), CallerHangup)
    outbound = {**media, "media": {**media["media"], "track": "outbound"}}
    assert twilio.parse_message(text(outbound)) is None  # only the caller's track is heard


@pytest.mark.fault("wrong codec")
def test_twilio_start_needs_the_telephone_format() -> None:
    start = {"event": "start", "start": {
        "streamSid": "MZ1", "callSid": "CA1", "customParameters": {"caller": "+8613800000001"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
    assert twilio.parse_start(text(start)) == {"stream_sid": "MZ1", "call_sid": "CA1",
                                               "caller": "+8613800000001", "locale": None}
    assert twilio.parse_start(text({"event": "connected"})) is None
    start["start"]["mediaFormat"]["encoding"] = "audio/x-l16"
    with pytest.raises(ProtocolError, match="need audio/x-mulaw, 8000 Hz, mono"):
        twilio.parse_start(text(start))


@pytest.mark.fault("malformed messages")
@pytest.mark.parametrize(("message", "error"), [
    (SimpleNamespace(type=WSMsgType.BINARY, data=b"\0\0"), "JSON text messages only"),
    (SimpleNamespace(type=WSMsgType.TEXT, data="[1]"), "not a JSON object"),
    (text({"event": "media", "media": {"payload": "@@@"}}), "not base64"),
    (text({"event": "dtmf", "dtmf": {"digit": "123456"}}), "of 6 characters is not a key"),
    (text({"event": "teleport"}), "unknown event"),
])
def test_twilio_malformed_messages_say_what_is_wrong(message, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        twilio.parse_message(message)


def test_twilio_signature_matches_twilios_published_example() -> None:
    # The example from Twilio's security documentation.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
              "From": "+14158675310", "To": "+18005551212"}
    assert twilio.twilio_signature("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="


@pytest.mark.fault("wrong codec")
def test_audiosocket_frames_become_engine_events() -> None:
    assert audiosocket.parse_frame(0x10, b"\x01\x00\x02\x00") == AudioIn(b"\x01\x00\x02\x00")
    assert audiosocket.parse_frame(0x03, b"7") == DigitIn("7")
    assert audiosocket.parse_frame(0x00, b"").reason == "hangup"
    assert audiosocket.parse_frame(0xFF, b"\x02").reason == "asterisk error 02"
    assert audiosocket.frame(0x10, b"ab") == b"\x10\x00\x02ab"
    with pytest.raises(ProtocolError, match="not 8 kHz slin"):
        audiosocket.parse_frame(0x12, b"\0\0")
    with pytest.raises(ProtocolError, match="not whole 16-bit samples"):
        audiosocket.parse_frame(0x10, b"\0")
    with pytest.raises(ProtocolError, match="of 2 bytes is not one key"):
        audiosocket.parse_frame(0x03, b"12")


def test_plain_socket_messages_become_engine_events() -> None:
    binary = SimpleNamespace(type=WSMsgType.BINARY, data=b"\0\1\0\2")
    assert websocket.parse_message(binary) == AudioIn(b"\0\1\0\2")
    assert websocket.parse_message(text({"type": "dtmf", "digit": "0"})) == DigitIn("0")
    assert websocket.parse_message(text({"type": "mark", "name": "m"})) == PlaybackDone("m")
    assert isinstance(websocket.parse_message(text({"type": "hangup"})), CallerHangup)
    assert websocket.parse_start(text({"type": "start", "caller": "+1", "locale": "ko"})) == {
        "caller": "+1", "locale": "ko", "call_id": None}
    with pytest.raises(ProtocolError, match="pcm16 at 8000 Hz"):
        websocket.parse_start(text({"type": "start", "sample_rate": 16000}))


@pytest.mark.fault("a slow reader (stops reading)")
async def test_a_client_that_stops_reading_is_dropped_not_buffered() -> None:
    dropped = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        out = WebSocketOutput(ws, Limits(send_timeout_s=0.5), on_dead=dropped.set)
        chunk = b"\0" * 60_000
        for _ in range(2000):  # 120 MB: far more than any socket buffer holds
            await out.send_bytes(chunk)
            if ws.closed:
                break
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"http://127.0.0.1:{port}/", max_msg_size=0) as ws:
            await asyncio.wait_for(dropped.wait(), 30)  # never reading anything
            assert ws is not None
    finally:
        await runner.cleanup()
