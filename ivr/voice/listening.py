"""Hearing the caller: voice activity, the recognisers, endpointing and barge-in.

Caller audio advances the call's audio clock and goes into the recording (muted while a
card number or PIN is asked for). Energy voice-activity detection says when the caller
speaks: a voice as long as ``barge_in_min_speech_ms`` cuts an interruptible prompt and
makes the utterance worth waiting for (a stalled stream ends it after a while); the
recognisers turn it into words. What is heard is logged masked, with where it lies in the
call's audio.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivr.core.events import Emit, TranscriptFinal, TranscriptPartial
from ivr.core.masking import mask_entry, mask_text
from ivr.voice.asr import Hypothesis, Recognizer
from ivr.voice.audio import SpeechDetector, duration_ms
from ivr.voice.digit_entry import InputTimer
from ivr.voice.playback import Playback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Speech:
    """An utterance, as final as the recogniser that heard it made it."""

    hypothesis: Hypothesis
    recognizer: Recognizer
    heard: dict[str, Any] = field(default_factory=dict)
    spoke: bool = False  # the caller's voice was there (as long as a barge-in needs)


class Listener:
    """One call's ears. ``secret_entry``: whether the dialogue now asks for a card number
    or PIN (the words are masked whole, the audio muted); ``on_failure``: what to do once
    speech recognition failed (the recognisers are closed by then)."""

    def __init__(self, playback: Playback, timer: InputTimer, emit: Emit,
                 vad_threshold: int, barge_in_min_speech_ms: int,
                 secret_entry: Callable[[], bool],
                 on_failure: Callable[[], Awaitable[None]], call_id: str = "") -> None:
        self.playback = playback
        self.timer = timer
        self.emit = emit
        self.barge_in_min_speech_ms = barge_in_min_speech_ms
        self.secret_entry = secret_entry
        self.on_failure = on_failure
        self.call_id = call_id
        self.recognizers: list[Recognizer] = []
        self.caller_ms = 0  # the caller's audio clock (the recording's too)
        self.mid_utterance = False  # words heard (a partial), no final yet
        self._detector = SpeechDetector(vad_threshold)
        self._utterance_from: int | None = None  # where the words being decoded began
        self._voiced_ms: int | None = None  # the caller's last loud audio (endpoint wait)
        self._spoke_ms = 0.0  # the longest run of the caller's voice in this utterance

    async def expect(self, phrases: Sequence[str] | None) -> None:
        """Listen for these phrases from now on (None: free-form speech)."""
        try:
            for recognizer in self.recognizers:
                await recognizer.expect(phrases)
        except Exception:
            await self.failed()

    async def failed(self) -> None:
        """The recogniser died (its worker crashed, say): the caller goes to an agent."""
        log.exception("call %s: speech recognition failed", self.call_id)
        for recognizer in self.recognizers:
            recognizer.close()
        self.recognizers = []
        await self.on_failure()

    def take_audio(self, pcm: bytes) -> None:
        """Caller audio is on the call's clock and in the recording (as silence while a
        card number or PIN is being collected)."""
        self.caller_ms += int(duration_ms(pcm))
        if self.playback.recording:
            self.playback.recording.caller(pcm, muted=self.secret_entry())

    async def hear(self, pcm: bytes) -> Speech | None:
        """Caller audio (already taken): an utterance once a recogniser ends one."""
        speaking_ms = self._detector.feed(pcm)
        if speaking_ms:
            self._voiced_ms = self.caller_ms - int(self._detector.quiet_ms)
        if not self.recognizers:  # keys only: sound neither interrupts a menu nor waits
            return None           # for words (the no-input timer keeps running)
        if self.playback.must_be_heard:
            return None  # a prompt that must be heard out: the caller cannot answer yet
        self._spoke_ms = max(self._spoke_ms, speaking_ms)
        if self._spoke_ms >= self.barge_in_min_speech_ms:
            self.mid_utterance = True  # a voice, even with no partial yet: await its end
        if speaking_ms:
            self.timer.caller_speaking()
        if self.playback.playing and speaking_ms >= self.barge_in_min_speech_ms:
            await self.playback.barge_in()
        if self._utterance_from is None:
            self._utterance_from = self.caller_ms - int(duration_ms(pcm))
        for recognizer in self.recognizers:
            try:
                started = time.perf_counter()
                hyp = await recognizer.accept(pcm)
            except Exception:
                await self.failed()
                return Speech(Hypothesis("", final=True), recognizer)
            if hyp and hyp.final:
                return self._utterance(hyp, recognizer, time.perf_counter() - started)
            if hyp:
                self.mid_utterance = self.mid_utterance or bool(hyp.raw or hyp.text)
                self.emit(TranscriptPartial, text=self._mask(hyp.raw))
        return None

    async def end_stalled_utterance(self) -> Speech | None:
        """The caller's audio stopped mid-utterance (a stalled stream, a client that stops
        sending): what was heard so far is the utterance; the silence that would end it
        is never coming."""
        self.mid_utterance = False
        for recognizer in self.recognizers:
            try:
                started = time.perf_counter()
                hyp = await recognizer.finish()
            except Exception:
                await self.failed()
                return Speech(Hypothesis("", final=True), recognizer)
            if hyp.text or hyp.raw or self._spoke():
                self._voiced_ms = None  # the stall timer ended it, not an endpoint
                return self._utterance(hyp, recognizer, time.perf_counter() - started,
                                       stalled=True)
        return None

    async def heard_so_far(self) -> str:
        """A caller who hangs up mid-sentence: keep what they said for the record."""
        for recognizer in self.recognizers:
            try:
                hyp = await recognizer.finish()
            except Exception:
                continue
            if hyp.raw:
                return hyp.raw
        return ""

    def close(self) -> None:
        for recognizer in self.recognizers:
            recognizer.close()

    def _utterance(self, hyp: Hypothesis, recognizer: Recognizer, decoded_s: float,
                   **note: Any) -> Speech:
        """A final hypothesis: logged with where it lies in the call audio, how long the
        recogniser waited after the last loud audio to end it (caller audio time) and how
        long its final decoding took."""
        self.mid_utterance = False
        if self._voiced_ms is not None and self._voiced_ms >= (self._utterance_from or 0):
            note["endpoint_s"] = max(0, self.caller_ms - self._voiced_ms) / 1000
        self._voiced_ms = None
        heard, spoke = self._heard(hyp), self._spoke()
        self._spoke_ms = 0.0
        self.emit(TranscriptFinal, text=self._mask(hyp.text), **note, **heard,
                  transcript_s=round(decoded_s, 4))
        if not hyp.text and not hyp.raw and not spoke and not self.playback.playing:
            self.timer.start(collecting=False)  # only noise: keep waiting
        return Speech(hyp, recognizer, heard, spoke)

    def _spoke(self) -> bool:
        """The caller spoke, whatever the recogniser made of it: a voice as long as one that
        cuts a prompt is speech, and speech no grammar matched is a no-match, not silence
        (two of them reach an agent as ``no_match``, SPEC rule 1)."""
        return self._spoke_ms >= self.barge_in_min_speech_ms

    def _mask(self, text: str) -> str:
        """Spoken numbers are masked; while a card number or PIN is asked for, the whole
        utterance (a partial may hold the first digits, the recogniser may have made other
        words of them)."""
        return mask_entry(text) if self.secret_entry() else mask_text(text)

    def _heard(self, hyp: Hypothesis) -> dict[str, Any]:
        """How an utterance was heard, for the log: raw words, n-best, where in the call
        audio it lies (``ivr replay`` decodes that span again)."""
        start, self._utterance_from = self._utterance_from or 0, None
        heard: dict[str, Any] = {"raw": self._mask(hyp.raw),
                                 "audio_ms": [start, self.caller_ms]}
        if hyp.alternatives:
            heard["alternatives"] = [{**a, "text": self._mask(a["text"])}
                                     for a in hyp.alternatives]
        if self.secret_entry():
            heard["muted"] = True  # not in the recording: replay uses the transcript
        return heard
