"""One phone call on the voice path: caller audio and keys in, prompt audio out.

The session drives ``ivr.dialogue.call.Call`` (the dialogue) with the caller's inputs, asks which
language at call start, offers key menus to a caller whose language cannot be heard, and
ends the call (the handoff delivered to the ACD). The work of the line is done by its
processors, each testable alone: ``Inbox`` (turn-taking), ``Listener`` (VAD, recognisers,
endpointing, barge-in), ``DigitEntry`` and ``InputTimer`` (keys, timers) and ``Playback``
(prompts, marks, the recording). It knows nothing of sockets: a transport pushes inbound
events and implements ``CallOutput``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ivr.calllog.recording import RecordingTrack
from ivr.core.events import (
    CallEnded,
    CallEvent,
    CallStarted,
    EventSink,
    KeyPressed,
    LanguageChosen,
    TimerFired,
)
from ivr.core.inputs import CallerInput, Choice, Hangup, Keys, Say, Silence, Unintelligible
from ivr.core.report import CallReport
from ivr.dialogue.call import Call, Turn
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.handoff import HandoffDesk
from ivr.voice.asr import Recognizer
from ivr.voice.caller_input import Inbox, Key, Timeout
from ivr.voice.digit_entry import DigitEntry, InputTimer
from ivr.voice.events import CallOutput, InboundEvent
from ivr.voice.listening import Listener, Speech
from ivr.voice.playback import Playback
from ivr.voice.tts import PromptAudio
from ivr.voice.voice_locale import VoiceLocale

log = logging.getLogger(__name__)

LANGUAGE_ATTEMPTS = 2  # then the default language


@dataclass(frozen=True)
class VoiceSettings:
    no_input_ms: int = 6000  # silence after a prompt before it counts as no input
    inter_digit_ms: int = 3000  # a key entry ends this long after the last key
    max_digits: int = 19  # a card number
    barge_in_min_speech_ms: int = 300  # shorter sounds (a cough) do not cut a prompt
    vad_threshold: int = 400  # RMS energy that counts as speech
    dialogue_timeout_s: float = 10.0  # then the caller goes to an agent
    playback_grace_s: float = 3.0  # a prompt counts as heard this long after its length
    audio_stall_ms: int = 2000  # no caller audio this long mid-utterance: take it as ended
    max_queued_audio: int = 500  # inbound frames waiting (10 s at 20 ms); more are dropped


@dataclass
class VoiceServices:
    """What every call shares: loaded once by the server."""

    engines: dict[str, DialogueEngine]
    locales: dict[str, VoiceLocale]
    prompts: PromptAudio
    recognizer_for: Callable[[str], Recognizer | None]  # None: the locale takes keys only
    default_locale: str
    settings: VoiceSettings = field(default_factory=VoiceSettings)
    observers: list[EventSink] = field(default_factory=list)  # metrics, the call log
    open_recording: Callable[[str], RecordingTrack | None] = lambda call_id: None
    log_settled: Callable[[], Awaitable[object]] = lambda: asyncio.sleep(0)  # log committed


class VoiceSession:
    """One call: the processors (module docstring) share its state through the session,
    which turns each input the ``Inbox`` hands it into a dialogue step, and the dialogue's
    answer into prompts."""

    def __init__(self, services: VoiceServices, output: CallOutput | None, caller_id: str = "",
                 locale: str | None = None, external_id: str | None = None,
                 transport: str = "",
                 acd: HandoffDesk | None = None) -> None:
        self.services = services
        self.acd = acd  # where an escalated call's handoff goes
        self.settings = settings = services.settings
        self.caller_id = caller_id
        self.locale = locale if locale in services.engines else None
        self.call_id = uuid.uuid4().hex  # the engine names every call (never the wire)
        self.external_id = external_id  # the telephony's id, cleaned: a reference only
        self.transport = transport
        self.call: Call | None = None
        self.events: list[CallEvent] = []
        self._playback = Playback(services.prompts, settings.playback_grace_s, self._emit,
                                  self.call_id)
        self._playback.output = output  # type: ignore[assignment]  # a transport sets it
        self._timer = InputTimer(settings.no_input_ms, settings.inter_digit_ms)
        self._keys = DigitEntry(settings.max_digits)
        self._listener = Listener(self._playback, self._timer, self._emit,
                                  settings.vad_threshold, settings.barge_in_min_speech_ms,
                                  self._secret_entry, self._asr_failed, self.call_id)
        self._inbox = Inbox(self._playback, self._timer, self._listener,
                            settings.audio_stall_ms, settings.max_queued_audio, self.call_id)
        # Set by the gateway when the call cannot be taken (over_capacity, draining): the
        # caller hears the busy prompt and the call ends, no dialogue, no recogniser.
        self.turned_away: str | None = None

    @property
    def output(self) -> CallOutput:
        return self._playback.output

    @output.setter
    def output(self, output: CallOutput) -> None:
        self._playback.output = output

    @property
    def queued_audio(self) -> int:
        """Caller audio frames received and not yet heard."""
        return self._inbox.queued_audio

    def push(self, event: InboundEvent) -> None:
        """From the transport: never blocks (``Inbox.push``)."""
        self._inbox.push(event)

    # --- the call ------------------------------------------------------------------------
    async def run(self) -> CallReport:
        """Run the call to its end and return its report (``Call.finish``'s, with the
        transport and the audio dropped)."""
        try:
            if self.turned_away:
                await self._turn_away()
            else:
                self._playback.recording = self.services.open_recording(self.call_id)
                await self._run()
        except _CallerGone:
            pass
        except Exception:
            log.exception("call %s: voice session failed", self.call_id)
            with contextlib.suppress(Exception):
                await self._fail_over("voice_session")
        finally:
            report = await self._close()
        return report

    async def _run(self) -> None:
        locale = self.locale or await self._choose_language()
        self.locale = locale
        voice = self.services.locales[locale]
        self.call = Call(self.services.engines[locale], self.caller_id, locale, self.call_id,
                         failure_prompt=voice.failure_prompt, transport=self.transport,
                         emit=self._emit, external_id=self.external_id)
        self._playback.call = self.call
        recognizer = self.services.recognizer_for(locale)
        self._listener.recognizers = [recognizer] if recognizer else []
        if voice.notice:
            await self._say([voice.notice], [None], interruptible=False)
        greeting = await self._dialogue(self.call.start())
        await self._say(*self._by_keys(greeting))
        while not self.call.ended:
            await self._listener.expect(self._phrases_after(self.call.prompt_names))
            if self.call.ended:  # the recogniser failed: the caller is going to an agent
                break
            event = await self._inbox.next_input(collecting=self._keys.collecting)
            if self.call.ended:  # a failure while listening already sent the caller on
                break
            if isinstance(event, Hangup):
                await self.call.take(event)
                return
            said: CallerInput | None = None
            if isinstance(event, Key):
                said = self._keyed(event.digit)
            elif isinstance(event, Timeout):
                self._emit(TimerFired, timer=event.kind)
                entry = self._keys.timed_out(event.kind)
                said = Keys(entry) if entry else Silence()
            else:
                hyp, asr = event.hypothesis, event.heard
                if hyp.text:
                    said = Say(hyp.text, asr)
                elif hyp.raw or event.spoke:  # words the grammar has none of: a no-match
                    said = Unintelligible(hyp.raw, asr)
            if said is None:
                continue  # an entry still collecting, or noise: nothing said
            prompts = await self._dialogue(self.call.take(said))
            await self._say(*self._by_keys(prompts))
        await self._inbox.wait_for_playback()

    def _keyed(self, digit: str) -> CallerInput | None:
        """A key: a menu's choice, the end of an entry, or None while an entry collects."""
        assert self.call is not None
        at_ms = self._listener.caller_ms
        choice = self._keys.choice(digit)
        if choice:  # a key menu's choice: a request
            self._emit(KeyPressed, digit=digit, at_ms=at_ms)
            return Choice(digit, choice.intent, tuple(choice.entities))
        secret = self.call.awaiting_secret_entry
        self._emit(KeyPressed, digit="*" if secret and digit.isdigit() else digit, at_ms=at_ms)
        entry = self._keys.key(digit, secret)
        return Keys(entry) if entry else None

    async def _turn_away(self) -> None:
        self.locale = self.locale or self.services.default_locale
        self._emit(CallStarted, transport=self.transport, caller=self.caller_id,
                   locale=self.locale, model=None, external_id=self.external_id)
        await self._say([self.services.locales[self.locale].busy_prompt], ["busy"],
                        interruptible=False)
        await self._inbox.wait_for_playback()

    def _by_keys(self, prompts: list[str]) -> tuple[list[str], list[str | None]]:
        """The dialogue's prompts, and their names; a caller whose language has no speech
        model here hears them worded for keys, then a key menu (docs/voice.md)."""
        assert self.call is not None and self.locale is not None
        names: list[str | None] = list(self.call.prompt_names)
        keypad = self.services.locales[self.locale].keypad
        self._keys.menu = None
        if self._listener.recognizers or keypad is None or self.call.ended \
                or self._secret_entry():
            return prompts, names
        prompts, names, self._keys.menu = keypad.offer(prompts, names)
        return prompts, names

    def _secret_entry(self) -> bool:
        """The dialogue asks for a card number or PIN: keys collect into one entry (ended
        by # or a pause), and the caller's words and audio are kept out of the records."""
        return self.call is not None and self.call.awaiting_secret_entry

    async def _dialogue(self, step: Awaitable[Any]) -> list[str]:
        """One dialogue request (never two at once on a call), bounded in time: a stuck
        dialogue layer sends the caller to an agent instead of leaving them in silence."""
        assert self.call is not None
        self._timer.stop()
        try:
            outcome = await asyncio.wait_for(step, self.settings.dialogue_timeout_s)
        except asyncio.TimeoutError:
            log.error("call %s: dialogue timed out; escalating", self.call_id)
            self.call.fail_over("dialogue_timeout")
            self.call.prompt_names = [None]
            return [self.call.failure_prompt]
        if isinstance(outcome, Turn):
            return outcome.prompts
        return list(outcome)

    def _phrases_after(self, prompt_names: Sequence[str | None]) -> list[str] | None:
        assert self.locale is not None
        return self.services.locales[self.locale].phrases_after(prompt_names)

    async def _asr_failed(self) -> None:
        await self._fail_over("asr")

    async def _choose_language(self) -> str:
        """Ask which language (keys, or speech in grammar mode on every locale's model)."""
        locales = self.services.locales
        if len(self.services.engines) == 1:
            return next(iter(self.services.engines))
        offered = sorted((v for k, v in locales.items() if k in self.services.engines),
                         key=lambda v: v.locale != self.services.default_locale)  # it first
        by_recognizer: dict[int, str] = {}
        for voice in offered:
            recognizer = self.services.recognizer_for(voice.locale)
            if recognizer:
                await recognizer.expect(voice.language_phrases)
                self._listener.recognizers.append(recognizer)
                by_recognizer[id(recognizer)] = voice.locale
        for _ in range(LANGUAGE_ATTEMPTS):
            for voice in offered:
                await self._say([voice.language_prompt], [None], voice=voice)
            while True:
                event = await self._inbox.next_input()
                if isinstance(event, Hangup):
                    raise _CallerGone
                if isinstance(event, Key):
                    self._emit(KeyPressed, digit=event.digit)
                    chosen = next((v.locale for v in offered if v.language_key == event.digit),
                                  None)
                elif isinstance(event, Speech):
                    chosen = by_recognizer.get(id(event.recognizer)) if event.hypothesis.text \
                        else None
                else:
                    break  # no input: ask again
                if chosen:
                    by = "keys" if isinstance(event, Key) else "speech"
                    self._emit(LanguageChosen, locale=chosen, by=by)
                    return chosen
        self._emit(LanguageChosen, locale=self.services.default_locale, by="default")
        return self.services.default_locale

    # --- talking -------------------------------------------------------------------------
    async def _say(self, prompts: Sequence[str], names: Sequence[str | None],
                   interruptible: bool = True, voice: VoiceLocale | None = None) -> None:
        voice = voice or self.services.locales[self.locale or self.services.default_locale]
        await self._playback.say(prompts, names, voice, interruptible)

    async def _fail_over(self, error: str) -> None:
        """Part of the voice path failed: tell the caller and send them to an agent."""
        if self.call and not self.call.ended:
            self.call.fail_over(error)
            self.call.prompt_names = [None]
            await self._say([self.call.failure_prompt], [None])

    async def _close(self) -> CallReport:
        if self._playback.recording:
            self._playback.recording.close()
        self._listener.close()
        recognizers = self._listener.recognizers
        figures = {"dropped_audio_frames": self._inbox.dropped_audio,
                   "asr_audio_s": sum(getattr(r, "audio_s", 0.0) for r in recognizers),
                   "asr_decode_s": sum(getattr(r, "decode_s", 0.0) for r in recognizers)}
        if self.call is None:  # turned away, or gone during the language menu
            report = CallReport(call_id=self.call_id, caller=self.caller_id,
                                locale=self.locale if self.turned_away else None,
                                outcome="busy" if self.turned_away else "hangup",
                                reached_dialogue=False, external_id=self.external_id,
                                turned_away=self.turned_away, transport=self.transport)
            self._emit(CallEnded, **report.end_fields(), **figures)
        else:  # the handoff goes to the ACD before the transport transfers the caller
            report = await self.call.finish(self.acd, **figures)
        report = replace(report, transport=self.transport,
                         dropped_audio_frames=self._inbox.dropped_audio)
        await self.services.log_settled()  # the caller hears the end once the log has it
        try:
            await self.output.end(report)
        except Exception:
            log.exception("call %s: transport failed to end the call", self.call_id)
        return report

    def _emit(self, kind: type[CallEvent], **data: Any) -> None:
        event = kind(call_id=self.call_id, **data)
        self.events.append(event)
        for observer in self.services.observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer failed on %s", kind.__name__)


class _CallerGone(Exception):
    """The caller hung up before the dialogue started."""

