"""Test telephones: real clients of the three protocols, over real sockets.

Each plays the telephony side: it sends caller audio and keys in the protocol's own
frames, collects the prompt audio the engine sends back, and acknowledges playback as the
real peer would (Twilio and the plain socket echo marks; Asterisk just plays).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import subprocess
import time
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ivr.telephony.twilio import twilio_signature
from ivr.voice.audio import FRAME_BYTES, pcm_to_ulaw, ulaw_to_pcm

SPEECH_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "test-speech"


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """The engine's app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


async def register_asterisk_call(url: str, token: str, call_uuid: str, caller: str,
                                 locale: str) -> None:
    """What the dialplan does before ``AudioSocket()``: tell the engine who is calling."""
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{url}/audiosocket/calls",
                               json={"uuid": call_uuid, "caller": caller, "locale": locale},
                               headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200, await resp.text()


def twilio_signed(url: str, auth_token: str) -> dict[str, str]:
    """The header Twilio signs a stream's WebSocket request with (the URL only: the
    messages, callSid among them, are not covered)."""
    return {"X-Twilio-Signature": twilio_signature(auth_token, url)}


def speak(text: str, voice: str = "ko", rate_wpm: int = 150) -> bytes:
    """``text`` spoken by espeak-ng, as 8 kHz telephone audio. ``sox -D`` (no dither)
    makes the conversion repeatable, so every run sends the same bytes."""
    SPEECH_CACHE.mkdir(parents=True, exist_ok=True)
    key = f"{voice}-{rate_wpm}-{text.encode().hex()[:80]}"
    raw, wav = SPEECH_CACHE / f"{key}.raw", SPEECH_CACHE / f"{key}.wav"
    if not raw.is_file():
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-w", str(wav), text],
                       check=True)
        out = SPEECH_CACHE / f"{key}.8k.wav"
        subprocess.run(["sox", "-D", str(wav), "-r", "8000", "-c", "1", "-b", "16", str(out)],
                       check=True)
        with wave.open(str(out)) as w:
            raw.write_bytes(w.readframes(w.getnframes()))
    return raw.read_bytes()


def silence(ms: int) -> bytes:
    return b"\0" * (16 * ms)


def tone(ms: int, hz: int = 440, amplitude: int = 8000) -> bytes:
    """A steady tone: loud enough to count as sound, with no words in it (a cough)."""
    import math

    n = 8 * ms
    return b"".join(struct.pack("<h", int(amplitude * math.sin(2 * math.pi * hz * i / 8000)))
                    for i in range(n))


@dataclass
class Prompt:
    mark: str
    text: str = ""
    audio: bytearray = field(default_factory=bytearray)
    heard_at: float = 0.0  # time.monotonic() when its mark came: heard to its end


class Phone:
    """What every test phone shares: prompts heard, events seen, the call's end."""

    transport = ""

    def __init__(self, ack_marks: bool = True) -> None:
        self.ack_marks = ack_marks
        self.prompts: list[Prompt] = []
        self.events: list[str] = []  # clear, end, ...
        self.end: dict[str, Any] | None = None
        self.closed = asyncio.Event()
        self._current = Prompt("")
        self._reader: asyncio.Task | None = None

    @property
    def audio_bytes(self) -> int:
        return sum(len(p.audio) for p in self.prompts) + len(self._current.audio)

    def _audio(self, pcm: bytes) -> None:
        self._current.audio.extend(pcm)

    def _prompt_done(self, mark: str) -> None:
        self._current.mark = mark
        self._current.heard_at = time.monotonic()
        self.prompts.append(self._current)
        self._current = Prompt("")

    async def wait_prompts(self, count: int, timeout: float = 60) -> list[Prompt]:
        async def enough() -> None:
            while len(self.prompts) < count and not self.closed.is_set():
                await asyncio.sleep(0.02)

        await asyncio.wait_for(enough(), timeout)
        return self.prompts

    async def wait_closed(self, timeout: float = 60) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def say(self, pcm: bytes, pace: float = 0.0, tail_ms: int = 1200) -> None:
        """Send speech then trailing silence in 20 ms frames (``pace``: seconds per
        frame, 0 = as fast as the socket takes it)."""
        data = pcm + silence(tail_ms)
        for i in range(0, len(data), FRAME_BYTES):
            await self.send_audio(data[i:i + FRAME_BYTES])
            await asyncio.sleep(pace)

    async def send_audio(self, pcm: bytes) -> None:
        raise NotImplementedError


class PlainPhone(Phone):
    transport = "websocket"

    async def connect(self, url: str, token: str | None = None, caller: str = "",
                      locale: str | None = None, **start: Any) -> PlainPhone:
        self._http = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.ws = await self._http.ws_connect(url, headers=headers)
        await self.ws.send_json({"type": "start", "caller": caller, "locale": locale, **start})
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self._audio(msg.data)
                continue
            data = json.loads(msg.data)
            if data["type"] == "prompt":
                self._current.text = data["text"]
            elif data["type"] == "mark":
                self._prompt_done(data["name"])
                if self.ack_marks:
                    await self.ws.send_json({"type": "mark", "name": data["name"]})
            elif data["type"] == "end":
                self.end = data
            self.events.append(data["type"])
        self.closed.set()
        await self._http.close()

    async def send_audio(self, pcm: bytes) -> None:
        if not self.ws.closed:
            await self.ws.send_bytes(pcm)

    async def dtmf(self, keys: str) -> None:
        for key in keys:
            await self.ws.send_json({"type": "dtmf", "digit": key})

    async def ack(self, mark: str) -> None:
        await self.ws.send_json({"type": "mark", "name": mark})

    async def hangup(self) -> None:
        await self.ws.send_json({"type": "hangup"})

    async def drop(self) -> None:
        await self.ws.close()


class TwilioPhone(Phone):
    transport = "twilio"

    async def connect(self, url: str, caller: str = "", locale: str | None = None,
                      headers: dict[str, str] | None = None,
                      media_format: dict[str, Any] | None = None,
                      call_sid: str | None = None) -> TwilioPhone:
        """``call_sid``: Twilio's id for the call (default a fresh one); the engine keeps it
        as the call's ``external_id`` and names the call itself."""
        self._http = aiohttp.ClientSession()
        self.ws = await self._http.ws_connect(url, headers=headers or {})
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.call_sid = "CA" + uuid.uuid4().hex if call_sid is None else call_sid
        self._seq = 0
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        params = {"caller": caller, **({"locale": locale} if locale else {})}
        await self._send({"event": "start", "start": {
            "accountSid": "AC" + "0" * 32, "streamSid": self.stream_sid,
            "callSid": self.call_sid, "tracks": ["inbound"], "customParameters": params,
            "mediaFormat": media_format or {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                            "channels": 1}}})
        self._reader = asyncio.create_task(self._read())
        return self

    async def _send(self, obj: dict[str, Any]) -> None:
        self._seq += 1
        obj = {**obj, "sequenceNumber": str(self._seq)}
        if obj["event"] != "connected":
            obj["streamSid"] = self.stream_sid
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(obj))

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            assert data.get("streamSid") == self.stream_sid, data
            if data["event"] == "media":
                self._audio(ulaw_to_pcm(base64.b64decode(data["media"]["payload"])))
            elif data["event"] == "mark":
                self._prompt_done(data["mark"]["name"])
                if self.ack_marks:
                    await self._send({"event": "mark", "mark": {"name": data["mark"]["name"]}})
            self.events.append(data["event"])
        self.closed.set()
        await self._http.close()

    async def send_audio(self, pcm: bytes) -> None:
        payload = base64.b64encode(pcm_to_ulaw(pcm)).decode()
        await self._send({"event": "media", "media": {"track": "inbound", "payload": payload}})

    async def dtmf(self, keys: str) -> None:
        for key in keys:
            await self._send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": key}})

    async def ack(self, mark: str) -> None:
        await self._send({"event": "mark", "mark": {"name": mark}})

    async def hangup(self) -> None:
        await self._send({"event": "stop", "stop": {"accountSid": "AC" + "0" * 32,
                                                     "callSid": self.call_sid}})

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)


class AsteriskPhone(Phone):
    """Asterisk's side of AudioSocket: prompts arrive as paced audio with no marks, so a
    prompt is taken as finished after a gap in the audio."""

    transport = "audiosocket"

    async def connect(self, host: str, port: int, call_uuid: str | None = None) -> AsteriskPhone:
        self.uuid = uuid.UUID(call_uuid) if call_uuid else uuid.uuid4()
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(struct.pack(">BH", 0x01, 16) + self.uuid.bytes)
        await self.writer.drain()
        self.hangup_received = False
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        last_audio = 0.0
        try:
            while True:
                try:
                    header = await asyncio.wait_for(self.reader.readexactly(3), 0.25)
                except asyncio.TimeoutError:
                    if self._current.audio and loop.time() - last_audio > 0.2:
                        self._prompt_done(f"gap-{len(self.prompts)}")
                    continue
                kind, length = struct.unpack(">BH", header)
                payload = await self.reader.readexactly(length) if length else b""
                if kind == 0x10:
                    self._audio(payload)
                    last_audio = loop.time()
                elif kind == 0x00:
                    self.hangup_received = True
                    self.events.append("hangup")
                    break
                elif kind == 0xFF:
                    self.events.append("error")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if self._current.audio:
            self._prompt_done(f"gap-{len(self.prompts)}")
        self.closed.set()

    async def send_frame(self, kind: int, payload: bytes = b"") -> None:
        if not self.writer.is_closing():
            self.writer.write(struct.pack(">BH", kind, len(payload)) + payload)
            await self.writer.drain()

    async def send_audio(self, pcm: bytes) -> None:
        await self.send_frame(0x10, pcm)

    async def dtmf(self, keys: str) -> None:
        for key in keys:
            await self.send_frame(0x03, key.encode())

    async def hangup(self) -> None:
        await self.send_frame(0x00)

    async def drop(self) -> None:
        self.writer.close()
