"""Telephony transports: each turns one wire protocol into ``ivr.voice.events`` and back.

- ``twilio``: Twilio Media Streams (WebSocket, JSON, base64 8 kHz mu-law)
- ``audiosocket``: Asterisk AudioSocket (TCP, kind/length/payload frames, 8 kHz slin)
- ``websocket``: the plain WebSocket (binary PCM16, JSON control; docs/plain-websocket.md)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiohttp import WSMsgType, web

from ivr.core.events import clip
from ivr.voice.events import CallerHangup, CallOutput, InboundEvent

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Caps that keep one broken or hostile client from hurting the others."""

    max_message_bytes: int = 64 * 1024  # one WebSocket message or AudioSocket frame
    first_message_s: float = 5.0  # a connection that says nothing is dropped
    send_timeout_s: float = 5.0  # a client that stops reading is dropped
    max_malformed: int = 50  # then the client is dropped as broken


class ProtocolError(Exception):
    """A frame the transport cannot take; the message says what and why."""


class Session(Protocol):
    call_id: str
    output: CallOutput

    def push(self, event: InboundEvent) -> None: ...


class CallHost(Protocol):
    """What a transport needs from the server: start calls and run them to their end."""

    limits: Limits

    def start_call(self, caller_id: str, locale: str | None, external_id: str | None,
                   transport: str) -> Session: ...

    async def run_call(self, session: Session, pumping: Awaitable[None]) -> None: ...

    def malformed(self, transport: str, reason: str) -> None: ...


def external_reference(value: Any) -> str | None:
    """The telephony's own call id (the plain socket's ``call_id``, Twilio's ``callSid``,
    AudioSocket's UUID), kept only as a reference to correlate with the bank's systems:
    never a call's id, a file name or a record key (the engine names every call itself).
    Control and format characters (NUL, newlines, bidi overrides) and lone surrogates are
    removed and it is cut to 255 characters; None when nothing is left."""
    if value is None:
        return None
    text = "".join(ch for ch in str(value) if unicodedata.category(ch) not in ("Cc", "Cf"))
    return clip(text.strip(), "external call id") or None


def is_loopback(request: web.Request) -> bool:
    """Without a configured secret an endpoint serves this machine only."""
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def json_object(msg: Any, sender: str) -> dict[str, Any]:
    """A WebSocket text message holding one JSON object; anything else is malformed."""
    if msg.type != WSMsgType.TEXT:
        raise ProtocolError(f"{sender} sends JSON text messages only")
    try:
        data = json.loads(msg.data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep ([[[[...)
        raise ProtocolError("message is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("message is not a JSON object")
    return data


async def run_websocket_call(
    request: web.Request, host: CallHost, transport: str,
    parse_start: Callable[[Any], T | None], parse_message: Callable[[Any], InboundEvent | None],
    call: Callable[[T], dict[str, Any]], output: Callable[[WebSocketOutput, T], CallOutput],
    report_refusal: bool = False,
) -> web.WebSocketResponse:
    """A call on a WebSocket, from the upgrade to its end: the opening message (``call``
    turns it into caller_id, locale and external_id), the session, and the message pump.
    ``report_refusal``: tell the client why a call could not start before closing."""
    limits = host.limits
    ws = web.WebSocketResponse(max_msg_size=limits.max_message_bytes, compress=False,
                               heartbeat=30)
    await ws.prepare(request)
    try:
        start = await first_message(ws, limits, parse_start)
    except ProtocolError as e:
        host.malformed(transport, str(e))
        if report_refusal:
            await ws.send_json({"type": "error", "error": str(e)})
        # A close frame's reason has 123 bytes at most; never cut a character in two.
        reason = str(e).encode()[:120].decode(errors="ignore").encode()
        await ws.close(code=1008, message=reason)
        return ws
    session = host.start_call(**call(start), transport=transport)
    socket = WebSocketOutput(ws, limits, on_dead=lambda: session.push(CallerHangup("dead")))
    session.output = output(socket, start)
    await host.run_call(session, read_messages(
        ws, parse_message, session.push, limits, session.call_id,
        lambda reason: host.malformed(transport, reason)))
    return ws


async def first_message(ws: web.WebSocketResponse, limits: Limits,
                        parse: Callable[[Any], T | None]) -> T:
    """The message that opens a call (``parse`` returns None for ones to skip), within
    the first-message timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.first_message_s
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise ProtocolError(f"no start message within {limits.first_message_s:g} s") \
                from None
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            raise ProtocolError("closed before the call started")
        started = parse(msg)
        if started is not None:
            return started


class WebSocketOutput:
    """Sending on a WebSocket for one call: bounded by the socket's own write buffer
    (aiohttp waits for it to drain) and by a send timeout, so a slow or stuck reader
    costs only its own call."""

    def __init__(self, ws: web.WebSocketResponse, limits: Limits,
                 on_dead: Callable[[], None]) -> None:
        self.ws = ws
        self.limits = limits
        self._on_dead = on_dead

    async def send_json(self, obj: dict[str, Any]) -> None:
        await self._send(self.ws.send_json(obj, dumps=_dumps))

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self.ws.send_bytes(data))

    async def _send(self, sending: Any) -> None:
        if self.ws.closed:
            sending.close()
            return
        try:
            await asyncio.wait_for(sending, self.limits.send_timeout_s)
        except (ConnectionError, RuntimeError, asyncio.TimeoutError) as e:
            log.warning("dropping a client that cannot take audio: %r", e)
            self._on_dead()
            await self.ws.close()

    async def close(self) -> None:
        await self.ws.close()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)  # Chinese and Korean as they are


async def read_messages(ws: web.WebSocketResponse, handle: Callable[[Any], InboundEvent | None],
                        push: Callable[[InboundEvent], None], limits: Limits,
                        call_id: str, on_malformed: Callable[[str], None]) -> None:
    """Pump a call's WebSocket into its session until either side ends it.

    A malformed message is logged and skipped (the call goes on); too many of them, or a
    message over the size cap, end the connection. However the socket ends, the session
    hears a hangup, so the call is always closed and logged.
    """
    malformed = 0
    hung_up = False
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                log.warning("call %s: websocket error %r", call_id, ws.exception())
                break
            try:
                event = handle(msg)
            except ProtocolError as e:
                malformed += 1
                on_malformed(str(e))
                log.warning("call %s: malformed message skipped: %s", call_id, e)
                if malformed > limits.max_malformed:
                    await ws.close(code=1003, message=b"too many malformed messages")
                    break
                continue
            if event is not None:
                push(event)
                if isinstance(event, CallerHangup):
                    hung_up = True
                    break
    finally:
        if not hung_up:
            push(CallerHangup("disconnected"))
