"""Stand-ins for testing the voice session and its processors on their own, as LiveKit
Agents and pipecat test their pipelines: a virtual clock, a scripted phone (the caller's
audio and keys on a timeline), a capturing transport, scripted prompt audio and a scripted
dialogue engine. No model, no sockets, no real time: a call of minutes runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import selectors
import struct
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ivr.core.events import CallEvent
from ivr.core.report import CallReport
from ivr.dialogue.confidence import ConfidenceBands
from ivr.dialogue.engine import TurnOutcome
from ivr.voice.asr import ScriptedRecognizer
from ivr.voice.audio import FRAME_MS, duration_ms
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, PlaybackDone
from ivr.voice.keypad import KeyChoice, KeyMenu, Keypad
from ivr.voice.session import VoiceServices, VoiceSession, VoiceSettings
from ivr.voice.tts import PromptAudio, TtsError
from ivr.voice.voice_locale import VoiceLocale

T = TypeVar("T")
E = TypeVar("E", bound=CallEvent)

LOUD = struct.pack("<160h", *([3000] * 160))  # one 20 ms frame of the caller's voice
QUIET = bytes(320)  # one 20 ms frame of line silence
MS_PER_CHARACTER = 100  # how long the scripted voice takes to say a character


# --- the clock -------------------------------------------------------------------------
class _VirtualSelector(selectors.DefaultSelector):
    """Never sleeps: where the loop would wait for its next timer, the clock jumps there."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # nothing scheduled and nothing to read: it would hang forever
            raise RuntimeError("the call waits for nothing (a deadlock)")
        self._loop.now += timeout
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: timers, ``sleep`` and ``wait_for`` run in order and
    at their exact times, but at once. Everything in it must be awaitable on the loop (no
    threads: nothing would wake it)."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


# --- prompt audio and the dialogue --------------------------------------------------------
class ScriptedVoice:
    """Prompt audio of silence, ``MS_PER_CHARACTER`` per character; text with ``坏`` in it
    cannot be synthesised (a TTS failure)."""

    async def synthesize(self, text: str, voice: str) -> bytes:
        if "坏" in text:
            raise TtsError("the voice is broken")
        return bytes(16 * MS_PER_CHARACTER * len(text))  # 8 kHz, 16-bit: 16 bytes a ms


GREETING = "您好，请问有什么可以帮您？"
ASK_CARD = "请输入您的卡号，以井号键结束。"
BALANCE = "您的余额是一千元。还有什么可以帮您？"
STILL_THERE = "您还在吗？"
NOT_UNDERSTOOD = "抱歉，我没听清。"
TRANSFER = "正在为您转接人工服务。"
GOODBYE = "再见。"
FAILURE = "系统出了点问题，正在为您转接人工。"

UNDERSTOOD = {"查余额": "check_balance", "再见": "goodbye", "转人工": "human_agent"}
HANDOFF = {"queue": "general", "reason": "no_input", "priority": 5, "topic": None}


class ScriptedDialogue:
    """A dialogue engine that understands the phrases of ``UNDERSTOOD`` for sure and answers
    as a bank's would: a balance asks for a card number (the verification form, keyed),
    keys answer it, the second silence or a request for an agent hands the call over.
    ``stuck_on``: an intent it never answers (a hung dialogue layer)."""

    model_path = Path("models/scripted.tar.gz")

    def __init__(self, stuck_on: str | None = None) -> None:
        self.bands = ConfidenceBands()
        self.kb = None
        self.stuck_on = stuck_on
        self.slots: dict[str, Any] = {}
        self.acted_on: list[str] = []
        self.ended = False

    async def parse(self, text: str) -> dict[str, Any]:
        intent = UNDERSTOOD.get(text, "nlu_fallback")
        confidence = 0.99 if intent != "nlu_fallback" else 0.0
        return {"text": text, "intent": {"name": intent, "confidence": confidence},
                "intent_ranking": [{"name": intent, "confidence": confidence}],
                "entities": [], "normalized": text}

    async def handle(self, call_id: str, parse: dict[str, Any]) -> TurnOutcome:
        intent = parse["intent"]["name"]
        self.acted_on.append(intent)
        if intent == self.stuck_on:
            await asyncio.sleep(3600)
        before = dict(self.slots)
        prompt, name = self._answer(intent, parse)
        changed = {k: v for k, v in self.slots.items() if before.get(k) != v}
        return TurnOutcome([prompt], dict(self.slots), changed, [name], [f"action_{intent}"])

    def _answer(self, intent: str, parse: dict[str, Any]) -> tuple[str, str]:
        slots = self.slots
        if intent == "call_start":
            return GREETING, "utter_greet"
        if intent == "check_balance":
            slots.update(active_loop="verification_form", requested_slot="account_ref")
            return ASK_CARD, "utter_ask_account_ref"
        if intent == "dtmf":
            slots.update(active_loop=None, requested_slot=None, verified=True,
                         account_ref=parse["entities"][0]["value"], topic="check_balance",
                         topic_served=True)
            return BALANCE, "utter_balance"
        if intent == "no_input":
            slots["no_inputs"] = slots.get("no_inputs", 0) + 1
            if slots["no_inputs"] < 2:
                return STILL_THERE, "utter_no_input"
            slots["handoff"] = HANDOFF
            return TRANSFER, "utter_transfer"
        if intent == "human_agent":
            slots["handoff"] = {**HANDOFF, "reason": "requested"}
            return TRANSFER, "utter_transfer"
        if intent == "goodbye":
            slots["call_ended"] = True
            return GOODBYE, "utter_goodbye"
        return NOT_UNDERSTOOD, "utter_not_understood"

    async def end(self, call_id: str) -> None:
        self.ended = True


def voice_locale(locale: str = "zh", key: str = "1", keypad: Keypad | None = None,
                 play_through: frozenset[str] = frozenset(), notice: str = "") -> VoiceLocale:
    return VoiceLocale(
        locale=locale, asr_model=None, tts_voice=f"voice-{locale}", language_key=key,
        language_phrases=(f"说{locale}",), language_prompt=f"{locale}请按{key}",
        notice=notice, failure_prompt=FAILURE, busy_prompt="线路忙，请稍后再拨。",
        grammars={}, expects={}, default_expects=(), play_through=play_through,
        keypad=keypad)


MENU = KeyMenu("main", "查询余额请按1，人工服务请按0。",
               {"1": KeyChoice("check_balance"), "0": KeyChoice("human_agent")})
KEYPAD = Keypad({"main": MENU}, after={}, default="main", instead={"utter_greet": "您好。"})

SETTINGS = VoiceSettings(no_input_ms=5000, inter_digit_ms=3000, playback_grace_s=1.0,
                         audio_stall_ms=2000)


def services(*heard: list[str], engines: dict[str, Any] | None = None,
             locales: dict[str, VoiceLocale] | None = None, hears: bool = True,
             settings: VoiceSettings = SETTINGS, observers: list[Any] | None = None,
             ) -> VoiceServices:
    """Voice services whose recogniser hears the next list of ``heard`` per recogniser
    asked for (none when ``hears`` is false: the locale takes keys only)."""
    scripts = list(heard)
    return VoiceServices(
        engines=engines or {"zh": ScriptedDialogue()},
        locales=locales or {"zh": voice_locale()},
        prompts=PromptAudio(ScriptedVoice()),
        recognizer_for=lambda locale: ScriptedRecognizer(
            scripts.pop(0) if scripts else [], end_of_speech_ms=300) if hears else None,
        default_locale="zh", settings=settings, observers=observers or [])


# --- the line -------------------------------------------------------------------------
class CapturingOutput:
    """A transport's output with no session behind it (the processors' own tests): what
    was played (mark, text), and how often playback was cleared."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.cleared = 0

    async def play(self, pcm: bytes, mark: str, text: str) -> None:
        self.sent.append((mark, text))

    async def clear(self) -> None:
        self.cleared += 1

    async def end(self, report: CallReport) -> None:
        pass


class Transport:
    """A capturing ``CallOutput``: each prompt plays for its length after the one before,
    then the transport reports it played, as a real one does; ``clear`` drops what is not
    yet heard. ``log``: what the caller's side saw, with the virtual time."""

    def __init__(self, session: VoiceSession, confirms: bool = True) -> None:
        self.session = session
        self.confirms = confirms  # False: a transport that never reports playback
        self.log: list[tuple[float, str, str]] = []
        self.played: list[str] = []  # the texts sent, in order
        self.result: CallReport | None = None
        self._busy_until = 0.0
        self._reports: list[asyncio.TimerHandle] = []

    async def play(self, pcm: bytes, mark: str, text: str) -> None:
        self.log.append((now(), "play", mark))
        self.played.append(text)
        self._busy_until = max(now(), self._busy_until) + duration_ms(pcm) / 1000
        if self.confirms:
            self._reports.append(asyncio.get_running_loop().call_at(
                self._busy_until, self._done, mark))

    def _done(self, mark: str) -> None:
        self.log.append((now(), "played", mark))
        self.session.push(PlaybackDone(mark))

    async def clear(self) -> None:
        self.log.append((now(), "clear", ""))
        for report in self._reports:
            report.cancel()
        self._reports.clear()
        self._busy_until = now()

    async def end(self, report: CallReport) -> None:
        self.log.append((now(), "end", report.outcome or ""))
        self.result = report


class Phone:
    """The caller's end of the line: a frame of audio every 20 ms (silence unless they
    speak), keys and hang-up, pushed into the session as a transport pushes them."""

    def __init__(self, session: VoiceSession) -> None:
        self.session = session
        self.sending = True  # False: the caller's audio stalls (no frames at all)
        self._loud_until = -1.0

    async def line(self) -> None:
        while True:
            if self.sending:
                self.session.push(AudioIn(LOUD if now() < self._loud_until - 1e-9 else QUIET))
            await asyncio.sleep(FRAME_MS / 1000)

    async def speak(self, ms: int) -> None:
        self._loud_until = now() + ms / 1000
        await asyncio.sleep(ms / 1000)

    async def wait(self, s: float) -> None:
        await asyncio.sleep(s)

    def key(self, *digits: str) -> None:
        for digit in digits:
            self.session.push(DigitIn(digit))

    async def keys(self, digits: str, gap_s: float = 0.3) -> None:
        for digit in digits:
            self.key(digit)
            await asyncio.sleep(gap_s)

    def hang_up(self) -> None:
        self.session.push(CallerHangup())


@dataclass
class Record:
    """One call as it happened: its result (its report's ``as_dict``), its events (each
    with its virtual time) and what the transport saw."""

    result: dict[str, Any]
    events: list[tuple[float, CallEvent]]
    transport: Transport
    session: VoiceSession
    dialogue: Any = None
    times: dict[str, float] = field(default_factory=dict)

    def types(self) -> list[type[CallEvent]]:
        return [type(e) for _, e in self.events]

    def of(self, kind: type[E]) -> list[E]:
        return [e for _, e in self.events if isinstance(e, kind)]

    def at(self, kind: type[CallEvent]) -> list[float]:
        """When the events of ``kind`` happened, on the virtual clock."""
        return [t for t, e in self.events if isinstance(e, kind)]


Script = Callable[[Phone], Awaitable[None]]


async def _quiet(phone: Phone) -> None:
    return None


async def place_call(voice: VoiceServices, script: Script = _quiet, confirms: bool = True,
                     session_class: type[VoiceSession] = VoiceSession, **call: Any) -> Record:
    """Run one call to its end: the phone plays ``script`` (then stays on the line, quiet)
    while the session runs; the events are stamped with the virtual time."""
    events: list[tuple[float, CallEvent]] = []

    def observe(event: CallEvent) -> None:
        events.append((now(), event))

    voice.observers.append(observe)
    session = session_class(voice, output=None, caller_id="13800000000", **call)
    transport = Transport(session, confirms)
    session.output = transport
    phone = Phone(session)
    tasks = [asyncio.ensure_future(phone.line()), asyncio.ensure_future(script(phone))]
    try:
        report = await asyncio.wait_for(session.run(), 600)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        voice.observers.remove(observe)
    engine = voice.engines.get(session.locale or "")
    return Record(report.as_dict(), events, transport, session, engine)


def call(voice: VoiceServices, script: Script = _quiet, **kw: Any) -> Record:
    return run_virtual(place_call(voice, script, **kw))
