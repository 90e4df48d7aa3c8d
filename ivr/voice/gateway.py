"""Live calls, whatever transport they came on: start them, run them, count them, and hand
finished calls to what needs them (the ACD for handoffs, the recent-calls list)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ivr.calllog import CallEvent, clip
from ivr.handoff import AcdWebhook
from ivr.voice.events import CallerHangup
from ivr.voice.session import VoiceServices, VoiceSession
from ivr.voice.transports import Limits, external_reference

log = logging.getLogger(__name__)


class CallLogState(Protocol):
    """What the metrics read of the call log's writer (``CallRecorder``)."""

    @property
    def pending(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def failing_since(self) -> float | None: ...
    @property
    def recordings_cut(self) -> int: ...
    @property
    def dead_letters(self) -> int: ...


class Metrics:
    """Prometheus metrics, an observer of call events (it never sits in the call's path)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls_active = Gauge("ivr_calls_active", "Calls in progress", ["transport"],
                                  registry=r)
        self.calls = Counter("ivr_calls", "Calls ended", ["transport", "outcome"], registry=r)
        self.events = Counter("ivr_call_events", "Call events by kind", ["kind"], registry=r)
        self.errors = Counter("ivr_errors", "Failures inside calls", ["error"], registry=r)
        self.malformed = Counter("ivr_malformed_messages", "Frames or messages refused",
                                 ["transport"], registry=r)
        self.response_latency = Histogram(
            "ivr_response_seconds", "End of caller speech (or key) to the first prompt audio",
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10), registry=r)
        self.asr_audio = Counter("ivr_asr_audio_seconds", "Caller audio decoded", registry=r)
        self.asr_decode = Counter("ivr_asr_decode_seconds", "Time spent decoding it",
                                  registry=r)
        self.turned_away = Counter("ivr_calls_turned_away", "Calls answered with the busy "
                                   "prompt", ["reason"], registry=r)
        self.capacity = Gauge("ivr_capacity_calls", "Calls taken at once (0: no limit)",
                              registry=r)
        self.draining = Gauge("ivr_draining", "1 while draining: no new calls taken",
                              registry=r)
        self.audio_backlog = Gauge("ivr_audio_backlog_frames", "Caller audio frames waiting "
                                   "to be heard, all calls", registry=r)
        self.loop_lag = Histogram(
            "ivr_event_loop_lag_seconds", "How late the event loop runs a timer (blocking)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1), registry=r)
        self.lock_wait = Histogram(
            "ivr_dialogue_lock_wait_seconds", "How long a caller input (or call start) waited "
            "for its conversation's lock before the dialogue handled it",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=r)
        self._heard_at: dict[str, float] = {}

    def observe(self, event: CallEvent) -> None:
        self.events.labels(event.kind).inc()
        if event.kind in ("greeting", "turn") and "lock_wait_s" in event.data:
            self.lock_wait.observe(event.data["lock_wait_s"])
        if event.kind == "error":
            self.errors.labels(str(event.data.get("error"))).inc()
        elif event.kind in ("dtmf", "timer") or (
                event.kind == "speech" and (event.data.get("text") or event.data.get("raw"))):
            self._heard_at.setdefault(event.call_id, event.at)
        elif event.kind == "prompt" and event.call_id in self._heard_at:
            self.response_latency.observe(event.at - self._heard_at.pop(event.call_id))
        elif event.kind == "end":
            self._heard_at.pop(event.call_id, None)
            self.asr_audio.inc(event.data.get("asr_audio_s", 0.0))
            self.asr_decode.inc(event.data.get("asr_decode_s", 0.0))

    def watch_call_log(self, call_log: CallLogState) -> None:
        """The call log's writer state, read at each scrape (as ``/health`` shows it)."""
        r = self.registry
        Gauge("ivr_call_log_pending_items", "Events and audio waiting to be written",
              registry=r).set_function(lambda: call_log.pending)
        Gauge("ivr_call_log_failing", "1 while writes to the call log's store fail",
              registry=r).set_function(lambda: float(call_log.failing_since is not None))
        Gauge("ivr_call_log_dropped_items", "Events and audio dropped since start: the queue "
              "was full while the store was down", registry=r).set_function(
                  lambda: call_log.dropped)
        Gauge("ivr_recordings_cut", "Recordings stopped early since start: the disk refused "
              "their audio", registry=r).set_function(lambda: call_log.recordings_cut)
        Gauge("ivr_call_log_dead_letters", "Events set aside since start: the store refused "
              "them for good (ivr calls dead-letters lists them)", registry=r).set_function(
                  lambda: call_log.dead_letters)

    async def watch_event_loop(self, every_s: float = 0.1) -> None:
        """Measure how late a timer fires: anything blocking the loop shows up here."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + every_s
            await asyncio.sleep(every_s)
            self.loop_lag.observe(max(0.0, loop.time() - due))


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
        self.metrics = Metrics()
        self.metrics.capacity.set(max_calls or 0)
        self.metrics.audio_backlog.set_function(
            lambda: sum(s.queued_audio for s in self.live.values()))
        self.metrics.draining.set_function(lambda: float(self.draining))
        services.observers.append(self.metrics.observe)
        self.live: dict[str, VoiceSession] = {}
        self.results: deque[dict[str, Any]] = deque(maxlen=keep_results)
        self.ended: list[Callable[[dict[str, Any]], Awaitable[None]]] = []
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
                               deliver_handoff=self._deliver if self.acd else None)
        # Decided here and counted in run_call with no await between (transports call one
        # right after the other), so two calls at once cannot both take the last line.
        if self.draining:
            session.turned_away = "draining"
        elif self.max_calls is not None and self.taken >= self.max_calls:
            session.turned_away = "over_capacity"
        if session.turned_away:
            self.metrics.turned_away.labels(session.turned_away).inc()
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

    async def _deliver(self, handoff: dict[str, Any]) -> dict[str, Any]:
        assert self.acd is not None
        delivery = (await self.acd.deliver(handoff)).as_dict()
        if delivery["status"] != "delivered":
            log.error("call %s: handoff not delivered: %s", handoff.get("call_id"),
                      delivery.get("error"))
        return delivery

    async def run_call(self, session: VoiceSession, pumping: Awaitable[None]) -> None:
        """Run a call while the transport pumps its input; whatever fails, the call ends
        with a result (and a handoff is delivered)."""
        pump = asyncio.ensure_future(pumping)
        pump.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                               or session.push(CallerHangup("transport_error")))
        self.live[session.call_id] = session
        gauge = self.metrics.calls_active.labels(session.transport)
        gauge.inc()
        try:
            result = await session.run()
        finally:
            gauge.dec()
            self.live.pop(session.call_id, None)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        self.metrics.calls.labels(session.transport, result["outcome"]).inc()
        self.results.append(result)
        for callback in self.ended:
            try:
                await callback(result)
            except Exception:
                log.exception("call %s: end-of-call hook failed", session.call_id)

    def malformed(self, transport: str, reason: str) -> None:
        self.metrics.malformed.labels(transport).inc()

    # --- AudioSocket carries no caller number: the dialplan registers it first ----------
    def register(self, call_uuid: str, info: dict[str, Any], ttl_s: float = 60.0) -> None:
        now = time.monotonic()
        self._registered = {k: v for k, v in self._registered.items() if v[0] > now}
        self._registered[call_uuid] = (now + ttl_s, info)

    def registered(self, call_uuid: str) -> dict[str, Any]:
        expires, info = self._registered.pop(call_uuid, (0.0, {}))
        return info if expires > time.monotonic() else {}
