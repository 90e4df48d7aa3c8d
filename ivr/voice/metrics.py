"""What ``/metrics`` and the server log say about calls: Prometheus metrics, an observer of
call events that never sits in a call's path, and one JSON log line per call end.

Names follow Prometheus conventions (docs/metrics.md): counters end in ``_total``, times
are ``_seconds`` histograms, and every label takes its values from a fixed set: the
routing contract's outcomes, queues and reasons, the configured locales, the three
transports, the code's own error and stage names. A value outside its set counts as
``other`` and a missing one as ``none``, so nothing from the wire can create a series.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, Protocol

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ivr.core.events import (
    CallEnded,
    CallEvent,
    Failed,
    Greeted,
    KeyPressed,
    PromptPlayed,
    TimerFired,
    TranscriptFinal,
    TurnTaken,
    kind_of,
)
from ivr.core.report import CallReport
from ivr.dialogue.routing import QUEUES, REASONS

TRANSPORTS = ("twilio", "websocket", "audiosocket")
OUTCOMES = ("self_service", "escalated", "hangup", "busy")  # docs/routing.md, and busy
TURNED_AWAY = ("over_capacity", "draining")  # why a call hears the busy prompt
ERRORS = ("asr", "tts", "nlu", "dialogue", "dialogue_timeout", "voice_session")
# A turn, from the end of the caller's speech to the first prompt audio (docs/metrics.md).
STAGES = ("endpoint", "transcript", "nlu", "dialogue_queue", "dialogue", "prompt")
NONE, OTHER = "none", "other"

calls_log = logging.getLogger("ivr.calls")  # the call-end lines (log_call_end)


def bounded(value: Any, allowed: Collection[str]) -> str:
    """A label value from its fixed set: ``none`` when absent, ``other`` when unknown."""
    if value is None or value == "":
        return NONE
    return value if isinstance(value, str) and value in allowed else OTHER


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


class _CallLogCollector(Collector):
    """The call log's writer as ``/health`` shows it, read at each scrape: two gauges, and
    three counts since start, which are counters (a rate over them means something)."""

    def __init__(self, call_log: CallLogState) -> None:
        self.call_log = call_log

    def collect(self) -> Iterator[Metric]:
        log = self.call_log
        yield GaugeMetricFamily("ivr_call_log_pending_items",
                                "Events and audio waiting to be written", value=log.pending)
        yield GaugeMetricFamily("ivr_call_log_failing",
                                "1 while writes to the call log's store fail",
                                value=float(log.failing_since is not None))
        yield CounterMetricFamily("ivr_call_log_dropped_items",
                                  "Events and audio dropped: the queue was full while the "
                                  "store was down", value=log.dropped)
        yield CounterMetricFamily("ivr_recordings_cut",
                                  "Recordings stopped early: the disk refused their audio",
                                  value=log.recordings_cut)
        yield CounterMetricFamily("ivr_call_log_dead_letters",
                                  "Events set aside: the store refused them for good (ivr "
                                  "calls dead-letters lists them)", value=log.dead_letters)


class Metrics:
    """Prometheus metrics in a registry of their own (one per app: several apps in one
    process, as in the tests, never share or collide)."""

    def __init__(self, locales: Iterable[str] = ()) -> None:
        self.locales = frozenset(locales)
        self.registry = CollectorRegistry()
        r = self.registry
        # What every Prometheus client exports by default: the process (CPU, memory, open
        # files) and the Python runtime (version, garbage collections).
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        self.calls_active = Gauge("ivr_calls_active", "Calls in progress", ["transport"],
                                  registry=r)
        self.calls = Counter("ivr_calls", "Calls ended",
                             ["transport", "locale", "outcome", "queue", "reason"], registry=r)
        self.call_duration = Histogram(
            "ivr_call_duration_seconds", "Calls ended, by how long they lasted",
            ["transport", "outcome"],
            buckets=(5, 15, 30, 60, 90, 120, 180, 300, 600, 1200, 1800), registry=r)
        self.events = Counter("ivr_call_events", "Call events by kind", ["kind"], registry=r)
        self.errors = Counter("ivr_errors", "Failures inside calls", ["error"], registry=r)
        self.malformed = Counter("ivr_malformed_messages", "Frames or messages refused",
                                 ["transport"], registry=r)
        self.response_latency = Histogram(
            "ivr_response_seconds", "End of caller speech (or key) to the first prompt audio",
            buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10), registry=r)
        self.stages = Histogram(
            "ivr_turn_stage_seconds", "One stage of a turn, from the end of the caller's "
            "speech to the first prompt audio", ["stage"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10), registry=r)
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
        # Every label value exists from the start: a rate over a series that appears with
        # its first call misses that call.
        for stage in STAGES:
            self.stages.labels(stage)
        for reason in TURNED_AWAY:
            self.turned_away.labels(reason)
        for error in ERRORS:
            self.errors.labels(error)
        for transport in TRANSPORTS:
            self.calls_active.labels(transport)
            self.malformed.labels(transport)

    def observe(self, event: CallEvent) -> None:
        self.events.labels(kind_of(event)).inc()  # kinds are the code's, never the wire's
        if isinstance(event, (Greeted, TurnTaken)) and event.lock_wait_s is not None:
            self.lock_wait.observe(event.lock_wait_s)
        match event:
            case TurnTaken():
                self._stage("nlu", event.nlu_s)
                if event.queue_wait_s is not None:
                    # The dialogue thread, then the conversation's lock.
                    self._stage("dialogue_queue", event.queue_wait_s + (event.lock_wait_s or 0))
                self._stage("dialogue", event.dialogue_s)
            case Failed():
                self.errors.labels(bounded(event.error, ERRORS)).inc()
            case TranscriptFinal() if event.text or event.raw:  # (noise heard as nothing: no input)
                self._stage("endpoint", event.endpoint_s)
                self._stage("transcript", event.transcript_s)
                self._heard_at.setdefault(event.call_id, event.at)
            case KeyPressed() | TimerFired():
                self._heard_at.setdefault(event.call_id, event.at)
            case PromptPlayed() if event.call_id in self._heard_at:
                self.response_latency.observe(event.at - self._heard_at.pop(event.call_id))
                self._stage("prompt", event.render_s)  # the first prompt of the answer
            case CallEnded():
                self._heard_at.pop(event.call_id, None)
                self.asr_audio.inc(event.asr_audio_s or 0.0)
                self.asr_decode.inc(event.asr_decode_s or 0.0)

    def _stage(self, stage: str, seconds: float | None) -> None:
        if seconds is not None:
            self.stages.labels(stage).observe(max(0.0, seconds))

    def call_started(self, transport: str) -> Gauge:
        """The call is live; the gauge returned is decremented when it ends."""
        gauge = self.calls_active.labels(bounded(transport, TRANSPORTS))
        gauge.inc()
        return gauge

    def call_ended(self, report: CallReport, duration_s: float) -> None:
        """A call's end (``VoiceSession.run``'s report), by its bounded labels."""
        labels = self.call_labels(report)
        self.calls.labels(**labels).inc()
        self.call_duration.labels(labels["transport"], labels["outcome"]).observe(duration_s)

    def call_labels(self, report: CallReport) -> dict[str, str]:
        outcome = bounded(report.outcome, OUTCOMES)
        reasons = TURNED_AWAY if outcome == "busy" else REASONS
        return {"transport": bounded(report.transport, TRANSPORTS),
                "locale": bounded(report.locale, self.locales),
                "outcome": outcome,
                "queue": bounded(report.queue, QUEUES),
                "reason": bounded(report.reason, reasons)}

    def turned_away_call(self, reason: str) -> None:
        self.turned_away.labels(bounded(reason, TURNED_AWAY)).inc()

    def malformed_message(self, transport: str) -> None:
        self.malformed.labels(bounded(transport, TRANSPORTS)).inc()

    def watch_call_log(self, call_log: CallLogState) -> None:
        """The call log's writer state, read at each scrape (as ``/health`` shows it)."""
        self.registry.register(_CallLogCollector(call_log))

    async def watch_event_loop(self, every_s: float = 0.1) -> None:
        """Measure how late a timer fires: anything blocking the loop shows up here."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + every_s
            await asyncio.sleep(every_s)
            self.loop_lag.observe(max(0.0, loop.time() - due))


def log_call_end(report: CallReport, duration_s: float) -> None:
    """One JSON line per call end on the ``ivr.calls`` logger (INFO): what a log pipeline
    indexes. The engine's call id, never the caller's number."""
    line = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "event": "call_end", "call_id": report.call_id,
            "external_id": report.external_id, "transport": report.transport,
            "locale": report.locale, "outcome": report.outcome,
            "queue": report.queue, "reason": report.reason,
            "intent": report.intent, "turns": len(report.turns),
            "duration_s": round(duration_s, 3)}
    calls_log.info(json.dumps(line, ensure_ascii=False))


def show_call_ends() -> None:
    """``ivr serve``: the call-end lines go to stderr as they are, one JSON object a line
    (the server log's other lines keep their own format and level)."""
    if calls_log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    calls_log.addHandler(handler)
    calls_log.setLevel(logging.INFO)
    calls_log.propagate = False
