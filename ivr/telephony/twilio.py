"""Twilio Media Streams: a bidirectional ``<Connect><Stream>`` WebSocket.

In: ``connected``, ``start`` (stream and call ids, ``customParameters``, the media format),
``media`` (base64 8 kHz mu-law), ``dtmf``, ``mark`` (a prompt has played), ``stop``.
Out: ``media``, ``mark`` after each prompt, ``clear`` on barge-in.
Twilio holds the outbound audio and plays it in real time, so prompts are sent at once
and Twilio's ``mark`` echo says when the caller has heard them.

Twilio passes the caller's number only if the TwiML forwards it:
``<Stream url="wss://.../twilio"><Parameter name="caller" value="{{From}}"/></Stream>``
(and ``locale`` the same way to skip the language menu).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from aiohttp import web

from ivr.core.report import CallReport
from ivr.telephony import (
    CallHost,
    ProtocolError,
    WebSocketOutput,
    is_loopback,
    json_object,
    run_websocket_call,
)
from ivr.voice.audio import pcm_to_ulaw, ulaw_to_pcm
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, InboundEvent, PlaybackDone

CHUNK_BYTES = 800  # mu-law bytes per media message: 100 ms
DTMF_DIGITS = set("0123456789*#")


def twilio_signature(auth_token: str, url: str, params: dict[str, str] | None = None) -> str:
    """Twilio's request signature: HMAC-SHA1 over the URL and the sorted POST parameters,
    keyed with the account's auth token, base64-encoded."""
    payload = url + "".join(k + v for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(request: web.Request, auth_token: str, public_url: str | None) -> bool:
    """Check ``X-Twilio-Signature`` against the URL Twilio dialled (``public_url`` when
    the server sits behind a proxy that changes scheme or host)."""
    given = request.headers.get("X-Twilio-Signature", "")
    base = (public_url.rstrip("/") if public_url
            else f"{'wss' if request.secure else 'ws'}://{request.host}")
    expected = twilio_signature(auth_token, base + request.path_qs)
    return hmac.compare_digest(given.encode(), expected.encode())


class TwilioOutput:
    """``CallOutput`` over a Twilio stream."""

    def __init__(self, socket: WebSocketOutput, stream_sid: str) -> None:
        self.socket = socket
        self.stream_sid = stream_sid

    async def play(self, pcm: bytes, mark: str, text: str) -> None:
        ulaw = pcm_to_ulaw(pcm)
        for i in range(0, len(ulaw), CHUNK_BYTES):
            payload = base64.b64encode(ulaw[i:i + CHUNK_BYTES]).decode()
            await self.socket.send_json({"event": "media", "streamSid": self.stream_sid,
                                         "media": {"payload": payload}})
        await self.socket.send_json({"event": "mark", "streamSid": self.stream_sid,
                                     "mark": {"name": mark}})

    async def clear(self) -> None:
        await self.socket.send_json({"event": "clear", "streamSid": self.stream_sid})

    async def end(self, report: CallReport) -> None:
        await self.socket.close()


def parse_start(msg: Any) -> dict[str, Any] | None:
    """The ``start`` message: stream id, call id, custom parameters; audio must be 8 kHz
    mono mu-law (the only format bidirectional streams carry). None for ``connected``."""
    data = json_object(msg, "Twilio")
    if data.get("event") == "connected":
        return None
    if data.get("event") != "start":
        raise ProtocolError(f"expected a start message, got {str(data.get('event'))[:30]!r}")
    start = data.get("start")
    if not isinstance(start, dict) or not start.get("streamSid"):
        raise ProtocolError("start message without start.streamSid")
    fmt = start.get("mediaFormat") or {}
    params = start.get("customParameters") or {}
    if not isinstance(fmt, dict) or not isinstance(params, dict):
        raise ProtocolError("start.mediaFormat and start.customParameters must be objects")
    try:
        audio = (fmt.get("encoding"), int(fmt.get("sampleRate") or 0),
                 int(fmt.get("channels") or 1))
    except (TypeError, ValueError, OverflowError):  # "8k", [8000], 1e999: not a rate
        audio = None
    if audio != ("audio/x-mulaw", 8000, 1):
        raise ProtocolError(f"unsupported media format {str(fmt)[:80]}: need audio/x-mulaw, "
                            "8000 Hz, mono")
    return {"stream_sid": str(start["streamSid"]), "call_sid": str(start.get("callSid") or ""),
            "caller": str(params.get("caller") or ""),
            "locale": str(params["locale"]) if params.get("locale") else None}


def parse_message(msg: Any) -> InboundEvent | None:
    """One message during the call as an engine event (None: nothing for the engine)."""
    data = json_object(msg, "Twilio")
    event = data.get("event")
    if event == "media":
        media = data.get("media")
        if not isinstance(media, dict) or media.get("track", "inbound") not in ("inbound",
                                                                                 "inbound_track"):
            return None
        try:
            ulaw = base64.b64decode(str(media.get("payload", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("media payload is not base64") from None
        return AudioIn(ulaw_to_pcm(ulaw)) if ulaw else None
    if event == "dtmf":
        # A bad key entry is never echoed into errors or logs: it may be part of a PIN.
        dtmf = data.get("dtmf")
        digit = str(dtmf.get("digit", "")) if isinstance(dtmf, dict) else ""
        if digit not in DTMF_DIGITS:
            raise ProtocolError(f"dtmf digit of {len(digit)} characters is not a key")
        return DigitIn(digit)
    if event == "mark":
        mark = data.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        return PlaybackDone(str(name)) if name else None
    if event == "stop":
        return CallerHangup("stop")
    if event in ("connected", "start"):
        return None
    raise ProtocolError(f"unknown event {str(event)[:30]!r}")


async def handle(request: web.Request, host: CallHost, auth_token: str | None,
                 public_url: str | None) -> web.StreamResponse:
    """One Twilio stream, from the WebSocket upgrade to the call's end."""
    if auth_token and not signature_valid(request, auth_token, public_url):
        return web.Response(status=403, text="bad X-Twilio-Signature\n")
    if not auth_token and not is_loopback(request):
        return web.Response(status=403, text="no Twilio auth token configured\n")
    return await run_websocket_call(
        request, host, "twilio", parse_start, parse_message,
        # The signature covers the URL, not the messages: callSid is only a reference.
        call=lambda s: {"caller_id": s["caller"], "locale": s["locale"],
                        "external_id": s["call_sid"] or None},
        output=lambda socket, s: TwilioOutput(socket, s["stream_sid"]))
