"""Live calls, whatever transport they came on: start them, run them, count them, and hand
finished calls to what needs them (the ACD for handoffs, the recent-calls list)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ivr.core.events import clip
from ivr.core.report import CallReport
from ivr.dialogue.handoff import AcdWebhook
from ivr.telephony import Limits, external_reference
from ivr.voice.events import CallerHangup
from ivr.voice.metrics import Metrics, log_call_end
from ivr.voice.session import VoiceServices, VoiceSession

log = logging.getLogger(__name__)


class Gateway:
    """The one place calls are started and ended (a ``CallHost`` for every transport)."""

    def __init__(self, services: VoiceServices, limits: Limits | None = None,
                 acd: AcdWebhook | None = None, keep_results: int = 200,
                 max_calls: int | None = None) -> None:
        self.services = services
        self.limits = limits or Limits()
        self.acd = acd
        # The measured real-time capacity (docs/capacity.md); None: no limit.
        self.max_calls = max_calls
        self.draining = False
        self.metrics = Metrics(services.engines)
        self.metrics.capacity.set(max_calls or 0)
        self.metrics.audio_backlog.set_function(
            lambda: sum(s.queued_audio for s in self.live.values()))
        self.metrics.draining.set_function(lambda: float(self.draining))
        services.observers.append(self.metrics.observe)
        self.live: dict[str, VoiceSession] = {}
        self.results: deque[CallReport] = deque(maxlen=keep_results)
        self.ended: list[Callable[[CallReport], Awaitable[None]]] = []
        self._registered: dict[str, tuple[float, dict[str, Any]]] = {}

    @property
    def taken(self) -> int:
        """Live calls being served (not those only hearing the busy prompt)."""
        return sum(1 for s in self.live.values() if not s.turned_away)

    def start_call(self, caller_id: str, locale: str | None, external_id: str | None,
                   transport: str) -> VoiceSession:
        """A new call, always with an id of the engine's making: the telephony's id
        (``external_id``, untrusted) is kept, cleaned, only to correlate with the bank's
        systems, so no id from the wire can name a file, take over a logged or live
        call's records or resume another call's conversation."""
        # Every transport's start fields pass here: cut to what the call log holds.
        session = VoiceSession(self.services, output=None,
                               caller_id=clip(caller_id, f"{transport} caller id"),
                               locale=clip(locale, f"{transport} locale") or None,
                               external_id=external_reference(external_id),
                               transport=transport,
                               acd=self.acd)
        # Decided here and counted in run_call with no await between (transports call one
        # right after the other), so two calls at once cannot both take the last line.
        if self.draining:
            session.turned_away = "draining"
        elif self.max_calls is not None and self.taken >= self.max_calls:
            session.turned_away = "over_capacity"
        if session.turned_away:
            self.metrics.turned_away_call(session.turned_away)
        return session

    async def drain(self, timeout_s: float) -> int:
        """Take no new call (each hears the busy prompt) and wait up to ``timeout_s`` for
        the live ones to end; returns how many were still live then."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.live and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return len(self.live)

    async def run_call(self, session: VoiceSession, pumping: Awaitable[None]) -> None:
        """Run a call while the transport pumps its input; whatever fails, the call ends
        with a result (and a handoff is delivered)."""
        pump = asyncio.ensure_future(pumping)
        pump.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                               or session.push(CallerHangup("transport_error")))
        self.live[session.call_id] = session
        started = time.monotonic()
        gauge = self.metrics.call_started(session.transport)
        try:
            report = await session.run()
        finally:
            gauge.dec()
            self.live.pop(session.call_id, None)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        duration_s = time.monotonic() - started
        self.metrics.call_ended(report, duration_s)
        log_call_end(report, duration_s)
        self.results.append(report)
        for callback in self.ended:
            try:
                await callback(report)
            except Exception:
                log.exception("call %s: end-of-call hook failed", session.call_id)

    def malformed(self, transport: str, reason: str) -> None:
        self.metrics.malformed_message(transport)

    # --- AudioSocket carries no caller number: the dialplan registers it first ----------
    def register(self, call_uuid: str, info: dict[str, Any], ttl_s: float = 60.0) -> None:
        now = time.monotonic()
        self._registered = {k: v for k, v in self._registered.items() if v[0] > now}
        self._registered[call_uuid] = (now + ttl_s, info)

    def registered(self, call_uuid: str) -> dict[str, Any]:
        expires, info = self._registered.pop(call_uuid, (0.0, {}))
        return info if expires > time.monotonic() else {}
