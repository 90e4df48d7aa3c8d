"""The plain WebSocket: binary PCM16 audio and JSON control messages.

For telephony that is neither Twilio nor Asterisk (an SBC, a softphone, a test rig); the
protocol is in docs/plain-websocket.md. The client authenticates with
``Authorization: Bearer <token>`` on the upgrade request.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import WSMsgType, web

from ivr.core.report import CallReport
from ivr.telephony import (
    CallHost,
    ProtocolError,
    WebSocketOutput,
    is_loopback,
    json_object,
    run_websocket_call,
)
from ivr.voice.audio import FRAME_BYTES
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, InboundEvent, PlaybackDone

CHUNK_BYTES = FRAME_BYTES * 5  # 100 ms of audio per binary message
DTMF_DIGITS = set("0123456789*#")


class PlainOutput:
    """``CallOutput`` over the plain WebSocket: the client plays audio as it comes and
    echoes each ``mark`` once the audio before it has played (as Twilio does)."""

    def __init__(self, socket: WebSocketOutput) -> None:
        self.socket = socket

    async def play(self, pcm: bytes, mark: str, text: str) -> None:
        await self.socket.send_json({"type": "prompt", "mark": mark, "text": text})
        for i in range(0, len(pcm), CHUNK_BYTES):
            await self.socket.send_bytes(pcm[i:i + CHUNK_BYTES])
        await self.socket.send_json({"type": "mark", "name": mark})

    async def clear(self) -> None:
        await self.socket.send_json({"type": "clear"})

    async def end(self, report: CallReport) -> None:
        summary = {k: getattr(report, k) for k in ("call_id", "outcome", "intent", "queue",
                                                   "skills", "priority", "reason")}
        await self.socket.send_json({"type": "end", **summary})
        await self.socket.close()


def authorized(request: web.Request, token: str | None) -> bool:
    if not token:
        return is_loopback(request)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


def parse_start(msg: Any) -> dict[str, Any]:
    data = json_object(msg, "the client")
    if data.get("type") != "start":
        raise ProtocolError(f"expected a start message, got {str(data.get('type'))[:30]!r}")
    try:
        rate = int(data.get("sample_rate", 8000))
    except (TypeError, ValueError, OverflowError):  # "8k", [8000], 1e999: not a rate
        rate = 0
    if rate != 8000 or data.get("encoding", "pcm16") != "pcm16":
        raise ProtocolError("audio must be pcm16 at 8000 Hz")
    locale = data.get("locale")
    return {"caller": str(data.get("caller") or ""), "locale": str(locale) if locale else None,
            "call_id": str(data["call_id"]) if data.get("call_id") else None}


def parse_message(msg: Any) -> InboundEvent | None:
    if msg.type == WSMsgType.BINARY:
        if len(msg.data) % 2:
            raise ProtocolError(f"audio of {len(msg.data)} bytes is not whole 16-bit samples")
        return AudioIn(bytes(msg.data)) if msg.data else None
    data = json_object(msg, "the client")
    kind = data.get("type")
    if kind == "dtmf":
        # A bad key entry is never echoed into errors or logs: it may be part of a PIN.
        digit = str(data.get("digit", ""))
        if digit not in DTMF_DIGITS:
            raise ProtocolError(f"dtmf digit of {len(digit)} characters is not a key")
        return DigitIn(digit)
    if kind == "mark":
        return PlaybackDone(str(data["name"])) if data.get("name") else None
    if kind == "hangup":
        return CallerHangup("hangup")
    raise ProtocolError(f"unknown message type {str(kind)[:30]!r}")


async def handle(request: web.Request, host: CallHost, token: str | None) -> web.StreamResponse:
    """One call on the plain WebSocket, from the upgrade to the call's end."""
    if not authorized(request, token):
        return web.Response(status=401, text="missing or wrong bearer token\n")
    return await run_websocket_call(
        request, host, "websocket", parse_start, parse_message,
        call=lambda s: {"caller_id": s["caller"], "locale": s["locale"],
                        "external_id": s["call_id"]},  # a reference, not the call's id
        output=lambda socket, s: PlainOutput(socket), report_refusal=True)
