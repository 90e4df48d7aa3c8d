"""The call's events: everything that happens on a call, on every transport, as an
ordered stream (docs/calllog.md lists the kinds).

Each kind is a frozen dataclass. Producers (``ivr.dialogue.call.Call`` for the dialogue,
``VoiceSession`` and its processors for audio, keys and prompts) emit them, already masked;
observers (the call log's ``CallRecorder``, the metrics) and readers of the log (timeline,
review, replay, trends) read their fields. ``encode``/``decode`` are the one codec between
them and the log's kind word and JSON data: no other module names a kind. Every layer
imports them from here: the event type belongs to no one layer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CallEvent:
    """Something that happened on a call, already masked. Each kind is a subclass below;
    the call log stores it as its ``KIND`` and its fields as JSON (``encode``/``decode``)."""

    KIND: ClassVar[str] = ""
    call_id: str
    at: float = field(default_factory=time.time)
    seq: int | None = None  # its place in the call log, once logged
    # What this version does not know of a logged event (an older or newer engine's keys,
    # the store's ``clashed_with``): kept as it was, so nothing read is lost when written.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CallStarted(CallEvent):
    KIND: ClassVar[str] = "start"
    transport: str | None = None
    caller: str | None = None
    locale: str | None = None
    model: str | None = None  # the dialogue model's file; none for a caller turned away
    external_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class LanguageChosen(CallEvent):
    KIND: ClassVar[str] = "language"
    locale: str
    by: str  # keys, speech or default


@dataclass(frozen=True, kw_only=True)
class RecordingStarted(CallEvent):
    KIND: ClassVar[str] = "recording"
    recording: str  # the file, relative to the recordings folder


@dataclass(frozen=True, kw_only=True)
class Greeted(CallEvent):
    KIND: ClassVar[str] = "greeting"
    prompts: list[str] = field(default_factory=list)
    prompt_names: list[str | None] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    lock_wait_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class PromptPlayed(CallEvent):
    KIND: ClassVar[str] = "prompt"
    name: str | None = None  # the domain response
    text: str = ""
    mark: str | None = None
    ms: int | None = None
    interruptible: bool | None = None
    render_s: float | None = None  # synthesis, or the cache


@dataclass(frozen=True, kw_only=True)
class BargedIn(CallEvent):
    KIND: ClassVar[str] = "barge_in"
    marks: list[str] = field(default_factory=list)  # the prompts the caller cut


@dataclass(frozen=True, kw_only=True)
class TranscriptPartial(CallEvent):
    KIND: ClassVar[str] = "partial"
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class TranscriptFinal(CallEvent):
    KIND: ClassVar[str] = "speech"
    text: str = ""  # what the dialogue got
    raw: str | None = None
    alternatives: list[dict[str, Any]] | None = None  # n-best: text and decoder score
    audio_ms: list[int] | None = None  # the span of the call's audio it was decoded from
    muted: bool | None = None  # not in the recording (a card or PIN being collected)
    endpoint_s: float | None = None  # last loud audio to the end of the utterance
    transcript_s: float | None = None  # the final decoding
    stalled: bool | None = None  # the audio stopped mid-utterance


@dataclass(frozen=True, kw_only=True)
class KeyPressed(CallEvent):
    KIND: ClassVar[str] = "dtmf"
    digit: str  # masked during an entry
    at_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class TimerFired(CallEvent):
    KIND: ClassVar[str] = "timer"
    timer: str  # no_input or digits


@dataclass(frozen=True, kw_only=True)
class TurnTaken(CallEvent):
    """One caller input understood and answered: the NLU's reading and the dialogue's."""

    KIND: ClassVar[str] = "turn"
    n: int
    input: dict[str, Any]  # say / dtmf / menu / silence / hangup, masked
    intent: str | None = None
    confidence: float | None = None
    intent_ranking: list[dict[str, Any]] | None = None  # the top 5
    normalized: str | None = None
    dialect: str | None = None
    entities: list[dict[str, Any]] | None = None
    asr: dict[str, Any] | None = None
    entry: str | None = None  # card or pin
    actions: list[str] | None = None
    slots: dict[str, Any] | None = None  # changed, masked
    prompts: list[str] | None = None
    prompt_names: list[str | None] | None = None
    correction_of: str | None = None
    band: str | None = None  # accept, confirm or reject
    confirmed: str | None = None  # the intent this yes confirmed
    lock_wait_s: float | None = None  # the stages of a turn (docs/metrics.md)
    queue_wait_s: float | None = None
    dialogue_s: float | None = None
    nlu_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class VerificationChanged(CallEvent):
    KIND: ClassVar[str] = "verification"
    state: str  # identified, attempt_failed, verified, failed
    customer_id: str | None = None
    by: str | None = None
    failed_attempts: int = 0


@dataclass(frozen=True, kw_only=True)
class MisrouteSignal(CallEvent):
    KIND: ClassVar[str] = "signal"
    signal: str  # ivr/trainer/review_signals.py weighs them
    turn: int | None = None
    intent: str | None = None


@dataclass(frozen=True, kw_only=True)
class Routed(CallEvent):
    KIND: ClassVar[str] = "route"
    queue: str
    reason: str | None = None
    priority: str | None = None
    topic: str | None = None
    skills: list[str] | None = None
    handoff: dict[str, Any] | None = None  # the masked bundle


@dataclass(frozen=True, kw_only=True)
class HandoffDelivered(CallEvent):
    KIND: ClassVar[str] = "delivery"
    status: str
    attempts: int | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class HungUp(CallEvent):
    KIND: ClassVar[str] = "hangup"
    heard: str | None = None  # what the caller was saying as they hung up


@dataclass(frozen=True, kw_only=True)
class Failed(CallEvent):
    KIND: ClassVar[str] = "error"
    error: str  # nlu, dialogue, dialogue_timeout, asr, tts, voice_session
    prompt: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    KIND: ClassVar[str] = "end"
    transport: str | None = None
    caller: str | None = None
    locale: str | None = None
    dialect: str | None = None
    outcome: str | None = None
    intent: str | None = None
    served: list[str] | None = None
    queue: str | None = None
    reason: str | None = None
    priority: str | None = None
    skills: list[str] | None = None
    external_id: str | None = None
    dropped_audio_frames: int | None = None  # voice calls: the session's figures
    asr_audio_s: float | None = None
    asr_decode_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class AgentFeedback(CallEvent):
    """The agent desktop's word on a call after its end (``POST /acd/feedback``)."""

    KIND: ClassVar[str] = "feedback"
    kind: str  # requeued or wrong_queue
    from_queue: str | None = None
    to_queue: str | None = None
    agent: str | None = None


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(CallEvent):
    """A logged kind this version does not know (a newer engine's): kept, never read."""

    name: str


KINDS: dict[str, type[CallEvent]] = {cls.KIND: cls for cls in (
    CallStarted, LanguageChosen, RecordingStarted, Greeted, PromptPlayed, BargedIn,
    TranscriptPartial, TranscriptFinal, KeyPressed, TimerFired, TurnTaken,
    VerificationChanged, MisrouteSignal, Routed, HandoffDelivered, HungUp, Failed, CallEnded,
    AgentFeedback)}
_LOG_FIELDS = ("call_id", "at", "seq", "extra")


def kind_of(event: CallEvent) -> str:
    """The word the call log, ``/metrics`` and the JSON output name an event's kind by."""
    return event.name if isinstance(event, UnknownEvent) else event.KIND


def encode(event: CallEvent) -> tuple[str, dict[str, Any]]:
    """An event as the call log keeps it: its kind and its data (fields left unset are
    left out; what was logged but unknown here goes back as it was)."""
    skip = _LOG_FIELDS + (("name",) if isinstance(event, UnknownEvent) else ())
    data = {f.name: getattr(event, f.name) for f in fields(event) if f.name not in skip}
    return kind_of(event), {**{k: v for k, v in data.items() if v is not None}, **event.extra}


def decode(kind: str, data: dict[str, Any], call_id: str, at: float,
           seq: int | None = None) -> CallEvent:
    """An event from the call log: its kind's type, with what that type does not know in
    ``extra``; a kind this version does not know as an ``UnknownEvent``."""
    cls = KINDS.get(kind)
    if cls is None:
        return UnknownEvent(call_id=call_id, at=at, seq=seq, name=kind, extra=dict(data))
    names = {f.name for f in fields(cls)} - set(_LOG_FIELDS)
    known = {k: v for k, v in data.items() if k in names}
    extra = {k: v for k, v in data.items() if k not in names}
    try:
        return cls(call_id=call_id, at=at, seq=seq, extra=extra, **known)
    except TypeError:  # a required field missing: an old or damaged event, kept as it was
        return UnknownEvent(call_id=call_id, at=at, seq=seq, name=kind, extra=dict(data))


def to_json(event: CallEvent) -> dict[str, Any]:
    """An event for ``--json`` output and the console: seq, at, kind and data."""
    kind, data = encode(event)
    return {"seq": event.seq, "at": event.at, "kind": kind, "data": data}


EventSink = Callable[[CallEvent], None]
Emit = Callable[..., None]  # emit(EventType, **fields) for one call


def emitter(sink: EventSink | None, call_id: str) -> Emit:
    """``emit(EventType, **fields)`` for one call, into ``sink`` (nowhere without one)."""
    if sink is None:
        return lambda kind, **data: None
    return lambda kind, **data: sink(kind(call_id=call_id, **data))


TEXT_MAX = 255  # what the call log's text columns hold (ivr/calllog/schema.py)


def clip(value: Any, what: str, limit: int = TEXT_MAX) -> str:
    """A free-text value from outside (a caller id from a transport's start message or a
    command line) as the engine keeps it: text, at most ``limit`` characters, without what
    no store can hold (NUL, lone surrogates). What is cut is said in the server log."""
    text = "" if value is None else str(value)
    cleaned = text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")
    if len(cleaned) > limit:
        log.warning("%s of %d characters cut to %d: %.40r...", what, len(cleaned), limit,
                    cleaned)
        return cleaned[:limit]
    if cleaned != text:
        log.warning("%s: NUL or unpaired surrogate characters removed", what)
    return cleaned

