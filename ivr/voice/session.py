"""One phone call on the voice path: caller audio and keys in, prompt audio out.

The session hears the caller (a recogniser per call), talks (prompt audio through the
transport), stops talking when interrupted (barge-in), collects keys, runs the no-input
timer, and drives ``ivr.call.Call`` (the dialogue). It knows nothing of sockets: a
transport pushes inbound events and implements ``CallOutput``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivr.call import Call, Turn
from ivr.calllog import CallEvent, EventSink, end_summary
from ivr.calllog.recording import RecordingTrack
from ivr.dialogue.engine import DialogueEngine
from ivr.masking import mask_entry, mask_text
from ivr.voice.asr import Hypothesis, Recognizer
from ivr.voice.audio import SpeechDetector, duration_ms
from ivr.voice.events import (
    AudioIn,
    CallerHangup,
    CallOutput,
    DigitIn,
    InboundEvent,
    PlaybackDone,
)
from ivr.voice.keypad import KeyMenu
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


@dataclass(frozen=True)
class _Speech:
    hypothesis: Hypothesis
    recognizer: Recognizer
    heard: dict[str, Any] = field(default_factory=dict)
    spoke: bool = False  # the caller's voice was there (as long as a barge-in needs)


@dataclass(frozen=True)
class _Digit:
    digit: str


@dataclass(frozen=True)
class _Timeout:
    kind: str  # no_input | digits


@dataclass(frozen=True)
class _Hangup:
    heard: str


class VoiceSession:
    def __init__(self, services: VoiceServices, output: CallOutput | None, caller_id: str = "",
                 locale: str | None = None, external_id: str | None = None,
                 transport: str = "",
                 deliver_handoff: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
                 | None = None) -> None:
        self.services = services
        self.deliver_handoff = deliver_handoff  # to the ACD, before the transport transfers
        self.settings = services.settings
        self.output: CallOutput = output  # type: ignore[assignment]  # a transport sets it
        self.caller_id = caller_id
        self.locale = locale if locale in services.engines else None
        self.call_id = uuid.uuid4().hex  # the engine names every call (never the wire)
        self.external_id = external_id  # the telephony's id, cleaned: a reference only
        self.transport = transport
        self.call: Call | None = None
        self.events: list[CallEvent] = []
        self._inbox: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._queued_audio = 0
        self._dropped_audio = 0
        self._detector = SpeechDetector(services.settings.vad_threshold)
        self._pending: dict[str, bool] = {}  # prompt marks not yet heard -> interruptible
        self._play_until = 0.0
        self._deadline: float | None = None
        self._deadline_kind = "no_input"
        self._marks = 0
        self._recognizers: list[Recognizer] = []
        self._menu: KeyMenu | None = None  # the key menu the caller was just offered
        self._recording: RecordingTrack | None = None
        self._caller_ms = 0  # the caller's audio clock (the recording's too)
        self._utterance_from: int | None = None  # where the words being decoded began
        self._voiced_ms: int | None = None  # the caller's last loud audio (endpoint wait)
        self._mid_utterance = False  # words heard (a partial), no final yet
        self._spoke_ms = 0.0  # the longest run of the caller's voice in this utterance
        # Set by the gateway when the call cannot be taken (over_capacity, draining): the
        # caller hears the busy prompt and the call ends, no dialogue, no recogniser.
        self.turned_away: str | None = None

    @property
    def queued_audio(self) -> int:
        """Caller audio frames received and not yet heard."""
        return self._queued_audio

    # --- from the transport --------------------------------------------------------------
    def push(self, event: InboundEvent) -> None:
        """Take an inbound event; never blocks. Audio beyond the cap is dropped (the call is
        far behind real time) so a flood cannot grow memory; keys and hangups never are."""
        if isinstance(event, AudioIn):
            if self._queued_audio >= self.settings.max_queued_audio:
                if not self._dropped_audio:
                    log.warning("call %s: audio backlog full, dropping frames", self.call_id)
                self._dropped_audio += 1
                return
            self._queued_audio += 1
        self._inbox.put_nowait(event)

    # --- the call ------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        """Run the call to its end and return its result (``Call.result()`` plus voice)."""
        try:
            if self.turned_away:
                await self._turn_away()
            else:
                self._recording = self.services.open_recording(self.call_id)
                await self._run()
        except _CallerGone:
            pass
        except Exception:
            log.exception("call %s: voice session failed", self.call_id)
            with contextlib.suppress(Exception):
                await self._fail_over("voice_session")
        finally:
            result = await self._close()
        return result

    async def _run(self) -> None:
        locale = self.locale or await self._choose_language()
        self.locale = locale
        voice = self.services.locales[locale]
        self.call = Call(self.services.engines[locale], self.caller_id, locale, self.call_id,
                         failure_prompt=voice.failure_prompt, transport=self.transport,
                         emit=self._emit, external_id=self.external_id)
        recognizer = self.services.recognizer_for(locale)
        self._recognizers = [recognizer] if recognizer else []
        if voice.notice:
            await self._say([voice.notice], [None], interruptible=False)
        greeting = await self._dialogue(self.call.start())
        await self._say(*self._by_keys(greeting))
        keys = ""
        while not self.call.ended:
            await self._listen_for(self.call.prompt_names)
            if self.call.ended:  # the recogniser failed: the caller is going to an agent
                break
            event = await self._next_input(collecting=bool(keys))
            if self.call.ended:  # a failure while listening already sent the caller on
                break
            if isinstance(event, _Hangup):
                await self.call.hangup(heard=event.heard)
                return
            turn: Awaitable[Turn] | None = None
            if isinstance(event, _Digit) and self._menu and event.digit in self._menu.keys:
                choice = self._menu.keys[event.digit]  # a key menu's choice: a request
                self._emit("dtmf", digit=event.digit, at_ms=self._caller_ms)
                turn = self.call.choose(event.digit, choice.intent, choice.entities)
            elif isinstance(event, _Digit):
                secret = self._wants_digits() and event.digit.isdigit()
                self._emit("dtmf", digit="*" if secret else event.digit, at_ms=self._caller_ms)
                if self._wants_digits() and event.digit != "#":
                    keys += event.digit
                    if len(keys) < self.settings.max_digits:
                        continue
                elif event.digit != "#":
                    keys = event.digit
                if not keys:
                    continue
                turn, keys = self.call.press(keys + "#"), ""
            elif isinstance(event, _Timeout):
                self._emit("timer", timer=event.kind)
                if event.kind == "digits" and keys:
                    turn, keys = self.call.press(keys + "#"), ""
                else:
                    turn = self.call.silence()
            else:
                hyp, asr = event.hypothesis, event.heard
                if hyp.text:
                    turn = self.call.say(hyp.text, asr)
                elif hyp.raw or event.spoke:  # words the grammar has none of: a no-match
                    turn = self.call.unintelligible(hyp.raw, asr)
                else:
                    continue  # noise: nothing said
            prompts = await self._dialogue(turn)
            await self._say(*self._by_keys(prompts))
        await self._wait_for_playback()

    async def _turn_away(self) -> None:
        self.locale = self.locale or self.services.default_locale
        self._emit("start", transport=self.transport, caller=self.caller_id,
                   locale=self.locale, model=None, external_id=self.external_id)
        await self._say([self.services.locales[self.locale].busy_prompt], ["busy"],
                        interruptible=False)
        await self._wait_for_playback()

    def _by_keys(self, prompts: list[str]) -> tuple[list[str], list[str | None]]:
        """The dialogue's prompts, and their names; a caller whose language has no speech
        model here hears them worded for keys, then a key menu (docs/voice.md)."""
        assert self.call is not None and self.locale is not None
        names: list[str | None] = list(self.call.prompt_names)
        keypad = self.services.locales[self.locale].keypad
        self._menu = None
        if self._recognizers or keypad is None or self.call.ended or self._wants_digits():
            return prompts, names
        prompts, names, self._menu = keypad.offer(prompts, names)
        return prompts, names

    def _wants_digits(self) -> bool:
        """Keys collect into one entry (ended by # or a pause) while the dialogue asks
        for a card number or PIN; elsewhere every key counts on its own."""
        slots = self.call.slots if self.call else {}
        return slots.get("active_loop") == "verification_form"

    async def _dialogue(self, step: Awaitable[Any]) -> list[str]:
        """One dialogue request (never two at once on a call), bounded in time: a stuck
        dialogue layer sends the caller to an agent instead of leaving them in silence."""
        assert self.call is not None
        self._deadline = None
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

    async def _listen_for(self, prompt_names: Sequence[str | None]) -> None:
        assert self.locale is not None
        phrases = self.services.locales[self.locale].phrases_after(prompt_names)
        try:
            for recognizer in self._recognizers:
                await recognizer.expect(phrases)
        except Exception:
            await self._asr_failed()

    async def _asr_failed(self) -> None:
        """The recogniser died (its worker crashed, say): the caller goes to an agent."""
        log.exception("call %s: speech recognition failed", self.call_id)
        for recognizer in self._recognizers:
            recognizer.close()
        self._recognizers = []
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
                self._recognizers.append(recognizer)
                by_recognizer[id(recognizer)] = voice.locale
        for _ in range(LANGUAGE_ATTEMPTS):
            for voice in offered:
                await self._say([voice.language_prompt], [None], voice=voice)
            while True:
                event = await self._next_input()
                if isinstance(event, _Hangup):
                    raise _CallerGone
                if isinstance(event, _Digit):
                    self._emit("dtmf", digit=event.digit)
                    chosen = next((v.locale for v in offered if v.language_key == event.digit),
                                  None)
                elif isinstance(event, _Speech):
                    chosen = by_recognizer.get(id(event.recognizer)) if event.hypothesis.text \
                        else None
                else:
                    break  # no input: ask again
                if chosen:
                    by = "keys" if isinstance(event, _Digit) else "speech"
                    self._emit("language", locale=chosen, by=by)
                    return chosen
        self._emit("language", locale=self.services.default_locale, by="default")
        return self.services.default_locale

    # --- listening -----------------------------------------------------------------------
    async def _next_input(self, collecting: bool = False) -> _Speech | _Digit | _Timeout | _Hangup:
        """Wait for the caller's next input, handling playback, barge-in and timers."""
        loop = asyncio.get_running_loop()
        while True:
            timers: list[tuple[float, str]] = []  # (seconds left, which)
            if self._pending:
                timers.append((max(0.0, self._play_until - loop.time()), "playback"))
            elif self._deadline is None and not self._mid_utterance:
                # A barge-in, or sound that never became words ("음" then nothing): the
                # caller is not speaking now, so no-input runs again (never dead air).
                self._start_timer(collecting)
            if not self._pending and self._deadline is not None:
                timers.append((max(0.0, self._deadline - loop.time()), "deadline"))
            if self._mid_utterance:  # the caller's audio may stop mid-word: never wait forever
                timers.append((self.settings.audio_stall_ms / 1000, "stalled"))
            timeout, timer = min(timers) if timers else (None, "")
            try:  # input already waiting wins over a timer that has run out meanwhile
                event = self._inbox.get_nowait() if not self._inbox.empty() else \
                    await asyncio.wait_for(self._inbox.get(), timeout)
            except asyncio.TimeoutError:
                if timer == "stalled":
                    speech = await self._end_stalled_utterance()
                    if speech:
                        return speech
                    continue
                if timer == "playback":  # the transport never confirmed playback: heard
                    self._pending.clear()
                    self._start_timer(collecting)
                    continue
                self._deadline = None
                return _Timeout(self._deadline_kind)
            if isinstance(event, PlaybackDone):
                if self._pending.pop(event.mark, None) is not None and not self._pending:
                    self._start_timer(collecting)
            elif isinstance(event, CallerHangup):
                return _Hangup(await self._heard_so_far())
            elif isinstance(event, DigitIn):
                await self._barge_in()
                self._deadline = loop.time() + self.settings.inter_digit_ms / 1000
                self._deadline_kind = "digits" if collecting or event.digit != "#" else "no_input"
                return _Digit(event.digit)
            elif isinstance(event, AudioIn):
                self._take_audio(event)
                speech = await self._hear(event.pcm)
                if speech:
                    return speech

    def _take_audio(self, event: AudioIn) -> None:
        """Inbound audio leaves the queue: it is on the call's clock and in the recording
        (as silence while a card number or PIN is being collected)."""
        self._queued_audio -= 1
        self._caller_ms += int(duration_ms(event.pcm))
        if self._recording:
            self._recording.caller(event.pcm, muted=self._wants_digits())

    async def _hear(self, pcm: bytes) -> _Speech | None:
        speaking_ms = self._detector.feed(pcm)
        if speaking_ms:
            self._voiced_ms = self._caller_ms - int(self._detector.quiet_ms)
        if not self._recognizers:  # keys only: sound neither interrupts a menu nor waits
            return None            # for words (the no-input timer keeps running)
        if self._pending and not all(self._pending.values()):
            return None  # a prompt that must be heard out: the caller cannot answer yet
        self._spoke_ms = max(self._spoke_ms, speaking_ms)
        if self._spoke_ms >= self.settings.barge_in_min_speech_ms:
            self._mid_utterance = True  # a voice, even with no partial yet: await its end
        if speaking_ms and self._deadline_kind == "no_input":
            self._deadline = None  # the caller is talking: no-input is off
        if self._pending and speaking_ms >= self.settings.barge_in_min_speech_ms:
            await self._barge_in()
        if self._utterance_from is None:
            self._utterance_from = self._caller_ms - int(duration_ms(pcm))
        for recognizer in self._recognizers:
            try:
                started = time.perf_counter()
                hyp = await recognizer.accept(pcm)
            except Exception:
                await self._asr_failed()
                return _Speech(Hypothesis("", final=True), recognizer)
            if hyp and hyp.final:
                return self._utterance(hyp, recognizer, time.perf_counter() - started)
            if hyp:
                self._mid_utterance = self._mid_utterance or bool(hyp.raw or hyp.text)
                self._emit("partial", text=self._mask_speech(hyp.raw))
        return None

    async def _end_stalled_utterance(self) -> _Speech | None:
        """The caller's audio stopped mid-utterance (a stalled stream, a client that stops
        sending): what was heard so far is the utterance; the silence that would end it
        is never coming."""
        self._mid_utterance = False
        for recognizer in self._recognizers:
            try:
                started = time.perf_counter()
                hyp = await recognizer.finish()
            except Exception:
                await self._asr_failed()
                return _Speech(Hypothesis("", final=True), recognizer)
            if hyp.text or hyp.raw or self._spoke():
                self._voiced_ms = None  # the stall timer ended it, not an endpoint
                return self._utterance(hyp, recognizer, time.perf_counter() - started,
                                       stalled=True)
        return None

    def _utterance(self, hyp: Hypothesis, recognizer: Recognizer, decoded_s: float,
                   **note: Any) -> _Speech:
        """A final hypothesis: logged with where it lies in the call audio, how long the
        recogniser waited after the last loud audio to end it (caller audio time) and how
        long its final decoding took."""
        self._mid_utterance = False
        if self._voiced_ms is not None and self._voiced_ms >= (self._utterance_from or 0):
            note["endpoint_s"] = max(0, self._caller_ms - self._voiced_ms) / 1000
        self._voiced_ms = None
        heard, spoke = self._heard(hyp), self._spoke()
        self._spoke_ms = 0.0
        self._emit("speech", text=self._mask_speech(hyp.text), **note, **heard,
                   transcript_s=round(decoded_s, 4))
        if not hyp.text and not hyp.raw and not spoke and not self._pending:
            self._start_timer(False)  # only noise: keep waiting
        return _Speech(hyp, recognizer, heard, spoke)

    def _spoke(self) -> bool:
        """The caller spoke, whatever the recogniser made of it: a voice as long as one that
        cuts a prompt is speech, and speech no grammar matched is a no-match, not silence
        (two of them reach an agent as ``no_match``, SPEC rule 1)."""
        return self._spoke_ms >= self.settings.barge_in_min_speech_ms

    def _mask_speech(self, text: str) -> str:
        """Spoken numbers are masked; while a card number or PIN is asked for, the whole
        utterance (a partial may hold the first digits, the recogniser may have made other
        words of them)."""
        return mask_entry(text) if self._wants_digits() else mask_text(text)

    def _heard(self, hyp: Hypothesis) -> dict[str, Any]:
        """How an utterance was heard, for the log: raw words, n-best, where in the call
        audio it lies (``ivr replay`` decodes that span again)."""
        start, self._utterance_from = self._utterance_from or 0, None
        heard: dict[str, Any] = {"raw": self._mask_speech(hyp.raw),
                                 "audio_ms": [start, self._caller_ms]}
        if hyp.alternatives:
            heard["alternatives"] = [{**a, "text": self._mask_speech(a["text"])}
                                     for a in hyp.alternatives]
        if self._wants_digits():
            heard["muted"] = True  # not in the recording: replay uses the transcript
        return heard
    async def _heard_so_far(self) -> str:
        """A caller who hangs up mid-sentence: keep what they said for the record."""
        for recognizer in self._recognizers:
            try:
                hyp = await recognizer.finish()
            except Exception:
                continue
            if hyp.raw:
                return hyp.raw
        return ""

    def _start_timer(self, collecting: bool) -> None:
        loop = asyncio.get_running_loop()
        if collecting:
            self._deadline_kind = "digits"
            self._deadline = loop.time() + self.settings.inter_digit_ms / 1000
        else:
            self._deadline_kind = "no_input"
            self._deadline = loop.time() + self.settings.no_input_ms / 1000

    # --- talking -------------------------------------------------------------------------
    async def _say(self, prompts: Sequence[str], names: Sequence[str | None],
                   interruptible: bool = True, voice: VoiceLocale | None = None) -> None:
        voice = voice or self.services.locales[self.locale or self.services.default_locale]
        loop = asyncio.get_running_loop()
        names = list(names) + [None] * (len(prompts) - len(names))
        for text, name in zip(prompts, names, strict=False):
            try:
                started = time.perf_counter()
                pcm = await self.services.prompts.render(text, voice.tts_voice, voice.locale, name)
                render_s = time.perf_counter() - started  # synthesis, or the cache
            except Exception:
                log.exception("call %s: no audio for prompt %r", self.call_id, name)
                self._emit("error", error="tts", prompt=name)
                if self.call and not self.call.ended:
                    self.call.fail_over("tts")  # a caller who cannot hear us needs a person
                continue
            self._marks += 1
            mark = f"{name or 'prompt'}-{self._marks}"
            # The last words of a call ("transferring you", goodbye) are heard out too.
            ending = self.call is not None and self.call.ended
            self._pending[mark] = interruptible and not ending and name not in voice.play_through
            start = max(loop.time(), self._play_until)
            self._play_until = start + duration_ms(pcm) / 1000 + self.settings.playback_grace_s
            self._emit("prompt", name=name, text=text, mark=mark, ms=round(duration_ms(pcm)),
                       interruptible=self._pending[mark], render_s=round(render_s, 4))
            if self._recording:
                self._recording.engine(pcm)
            await self.output.play(pcm, mark, text)

    async def _fail_over(self, error: str) -> None:
        """Part of the voice path failed: tell the caller and send them to an agent."""
        if self.call and not self.call.ended:
            self.call.fail_over(error)
            self.call.prompt_names = [None]
            await self._say([self.call.failure_prompt], [None])

    async def _barge_in(self) -> None:
        if self._pending and all(self._pending.values()):
            self._emit("barge_in", marks=list(self._pending))
            self._pending.clear()
            if self._recording:
                self._recording.cut()
            await self.output.clear()

    async def _wait_for_playback(self) -> None:
        """Let the last prompts (goodbye, "transferring you") be heard before ending."""
        loop = asyncio.get_running_loop()
        while self._pending:
            try:
                event = await asyncio.wait_for(self._inbox.get(),
                                               max(0.0, self._play_until - loop.time()))
            except asyncio.TimeoutError:
                return
            if isinstance(event, PlaybackDone):
                self._pending.pop(event.mark, None)
            elif isinstance(event, AudioIn):
                self._take_audio(event)
            elif isinstance(event, CallerHangup):
                return

    async def _close(self) -> dict[str, Any]:
        if self.call is None:
            result: dict[str, Any] = {"call_id": self.call_id, "caller": self.caller_id,
                                      "external_id": self.external_id,
                                      "outcome": "busy" if self.turned_away else "hangup",
                                      "reason": self.turned_away, "turns": [],
                                      "locale": self.locale if self.turned_away else None}
        else:
            if not self.call.ended:
                await self.call.hangup()
            result = self.call.result()
        result["transport"] = self.transport
        result["dropped_audio_frames"] = self._dropped_audio
        if self._recording:
            self._recording.close()
        for recognizer in self._recognizers:
            recognizer.close()
        if result.get("handoff") and self.deliver_handoff:
            try:
                result["delivery"] = await self.deliver_handoff(result["handoff"])
            except Exception as e:
                log.exception("call %s: handoff delivery failed", self.call_id)
                result["delivery"] = {"status": "failed", "error": type(e).__name__}
            self._emit("delivery", **result["delivery"])
        self._emit("end", **end_summary(result), dropped_audio_frames=self._dropped_audio,
                   asr_audio_s=sum(getattr(r, "audio_s", 0.0) for r in self._recognizers),
                   asr_decode_s=sum(getattr(r, "decode_s", 0.0) for r in self._recognizers))
        await self.services.log_settled()  # the caller hears the end once the log has it
        try:
            await self.output.end(result)
        except Exception:
            log.exception("call %s: transport failed to end the call", self.call_id)
        return result

    def _emit(self, kind: str, **data: Any) -> None:
        event = CallEvent(self.call_id, kind, data)
        self.events.append(event)
        for observer in self.services.observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer failed on %s", kind)


class _CallerGone(Exception):
    """The caller hung up before the dialogue started."""

