"""Hearing the caller on its own (ivr/voice/listening.py): caller audio fed frame by frame
to a listener with a scripted recogniser, a prompt player on a capturing transport and the
virtual clock (tests/voice_fakes.py)."""

from __future__ import annotations

from typing import Any

import pytest
from voice_fakes import LOUD, QUIET, CapturingOutput, ScriptedVoice, run_virtual, voice_locale

from ivr.calllog.recording import RecordingTrack
from ivr.core.events import (
    BargedIn,
    CallEvent,
    PromptPlayed,
    TranscriptFinal,
    TranscriptPartial,
    emitter,
)
from ivr.voice.asr import Hypothesis, ScriptedRecognizer
from ivr.voice.digit_entry import InputTimer
from ivr.voice.listening import Listener, Speech
from ivr.voice.playback import Playback
from ivr.voice.tts import PromptAudio

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

BARGE_IN_MS = 300


class Ears:
    """A listener and what it did: events, failures, the recording's caller channel."""

    def __init__(self, *heard: str, recognizer: Any = None, secret: bool = False) -> None:
        self.events: list[CallEvent] = []
        self.emit = emitter(self.events.append, "call-1")
        self.failures = 0
        self.secret = secret
        self.recorded: list[bytes] = []
        self.playback = Playback(PromptAudio(ScriptedVoice()), 1.0, self.emit)
        self.output = CapturingOutput()
        self.playback.output = self.output  # type: ignore[assignment]
        self.playback.recording = RecordingTrack(self.recorded.append)
        self.timer = InputTimer(no_input_ms=5000, inter_digit_ms=3000)
        self.listener = Listener(self.playback, self.timer, self.emit, vad_threshold=400,
                                 barge_in_min_speech_ms=BARGE_IN_MS,
                                 secret_entry=lambda: self.secret, on_failure=self.failed)
        if recognizer or heard:
            self.listener.recognizers = [
                recognizer or ScriptedRecognizer(list(heard), end_of_speech_ms=300)]

    async def failed(self) -> None:
        self.failures += 1

    def types(self) -> list[type[CallEvent]]:
        return [type(e) for e in self.events]

    def speech(self) -> TranscriptFinal:
        """The last utterance's event."""
        return [e for e in self.events if isinstance(e, TranscriptFinal)][-1]

    async def feed(self, frame: bytes, frames: int) -> list[Speech]:
        """Frames of caller audio as the session hands them over; the utterances heard."""
        heard = []
        for _ in range(frames):
            self.listener.take_audio(frame)
            speech = await self.listener.hear(frame)
            if speech:
                heard.append(speech)
        return heard


def test_an_utterance_is_heard_with_where_it_lies_in_the_call_audio() -> None:
    async def scenario() -> None:
        ears = Ears("查余额")
        assert await ears.feed(QUIET, 10) == []
        assert await ears.feed(LOUD, 30) == []  # 600 ms of voice
        assert ears.listener.mid_utterance and ears.types() == [TranscriptPartial]
        heard = await ears.feed(QUIET, 20)
        assert [s.hypothesis.text for s in heard] == ["查余额"] and heard[0].spoke
        speech = ears.speech()
        assert speech.text == "查余额" and speech.raw == "查余额"
        # From the audio after the last utterance to where the recogniser ended this one:
        # 320 ms of quiet after the voice (its 300 ms end-of-speech, in 20 ms frames).
        assert speech.audio_ms == [0, 200 + 600 + 320]
        assert speech.endpoint_s == 0.32
        assert not ears.listener.mid_utterance

    run_virtual(scenario())


def test_a_voice_long_enough_cuts_an_interruptible_prompt() -> None:
    async def scenario() -> None:
        ears = Ears("查余额")
        await ears.playback.say(["您好，请问有什么可以帮您？"], ["utter_greet"], voice_locale())
        await ears.feed(LOUD, BARGE_IN_MS // 20 - 1)
        assert ears.output.cleared == 0  # 280 ms: a cough, perhaps
        await ears.feed(LOUD, 1)
        assert ears.output.cleared == 1 and not ears.playback.playing
        assert BargedIn in ears.types()

    run_virtual(scenario())


def test_while_a_prompt_must_be_heard_out_the_caller_is_not_listened_to() -> None:
    async def scenario() -> None:
        ears = Ears("查余额")
        await ears.playback.say(["本通话将被录音。"], [None], voice_locale(),
                                interruptible=False)
        assert await ears.feed(LOUD, 30) == [] and await ears.feed(QUIET, 20) == []
        assert ears.types() == [PromptPlayed] and ears.output.cleared == 0
        assert ears.listener.caller_ms == 1000  # still on the call's clock

    run_virtual(scenario())


def test_during_a_secret_entry_words_are_masked_and_the_audio_muted() -> None:
    async def scenario() -> None:
        ears = Ears("六二二二 零二一二", secret=True)
        await ears.feed(LOUD, 30)
        heard = await ears.feed(QUIET, 20)
        speech = ears.speech()
        assert speech.raw == "**** ****" and speech.muted is True
        assert heard[0].heard["raw"] == "**** ****"
        assert not any(b"\xb8\x0b" in chunk for chunk in ears.recorded)  # no voice kept
        ears.secret = False
        ears.recorded.clear()
        await ears.feed(LOUD, 1)
        assert any(b"\xb8\x0b" in chunk for chunk in ears.recorded)  # 3000, recorded

    run_virtual(scenario())


def test_noise_is_no_utterance_and_no_input_runs_again() -> None:
    async def scenario() -> None:
        ears = Ears("查余额")
        ears.timer.start(collecting=False)
        await ears.feed(LOUD, 5)  # 100 ms
        assert not ears.timer.running  # a voice began: no-input is off
        heard = await ears.feed(QUIET, 20)
        assert heard[0].hypothesis.text == "" and not heard[0].spoke
        assert ears.timer.running and ears.timer.kind == "no_input"

    run_virtual(scenario())


def test_a_keys_only_caller_is_not_listened_to_and_no_input_keeps_running() -> None:
    async def scenario() -> None:
        ears = Ears()
        ears.timer.start(collecting=False)
        await ears.playback.say(["查询余额请按1"], [None], voice_locale())
        assert await ears.feed(LOUD, 30) == []
        assert ears.timer.running and ears.playback.playing and ears.types() == [PromptPlayed]

    run_virtual(scenario())


def test_a_stalled_stream_ends_the_utterance_with_what_was_heard() -> None:
    async def scenario() -> None:
        ears = Ears("转人工")
        await ears.feed(LOUD, 20)
        speech = await ears.listener.end_stalled_utterance()
        assert speech is not None and speech.hypothesis.text == "转人工"
        assert ears.speech().stalled is True
        assert await ears.listener.end_stalled_utterance() is None  # nothing more

    run_virtual(scenario())


class Crashing(ScriptedRecognizer):
    closed = False

    async def accept(self, pcm: bytes) -> Hypothesis | None:
        raise RuntimeError("the decoder's worker died")

    def close(self) -> None:
        self.closed = True


def test_a_recogniser_that_fails_is_closed_and_the_failure_handed_on() -> None:
    async def scenario() -> None:
        crashing = Crashing([])
        ears = Ears(recognizer=crashing)
        heard = await ears.feed(LOUD, 1)
        assert heard[0].hypothesis == Hypothesis("", final=True)
        assert ears.failures == 1 and crashing.closed and ears.listener.recognizers == []

    run_virtual(scenario())


def test_a_caller_who_hangs_up_mid_sentence_leaves_what_they_said() -> None:
    async def scenario() -> None:
        ears = Ears("我要挂失")
        await ears.feed(LOUD, 20)
        assert await ears.listener.heard_so_far() == "我要挂失"
        assert await Ears().listener.heard_so_far() == ""

    run_virtual(scenario())
