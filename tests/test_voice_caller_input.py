"""Turn-taking on its own (ivr/voice/caller_input.py): inbound events pushed into an inbox
over a prompt player and a keys-only listener, on the virtual clock (tests/voice_fakes.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from voice_fakes import QUIET, CapturingOutput, ScriptedVoice, now, run_virtual, voice_locale

from ivr.core.events import emitter
from ivr.core.inputs import Hangup
from ivr.voice.caller_input import Inbox, Key, Timeout
from ivr.voice.digit_entry import InputTimer
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, PlaybackDone
from ivr.voice.listening import Listener
from ivr.voice.playback import Playback
from ivr.voice.tts import PromptAudio

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

NO_INPUT_S, INTER_DIGIT_S, GRACE_S = 5.0, 3.0, 1.0


def inbox(max_queued_audio: int = 500) -> Inbox:
    emit = emitter(None, "call-1")  # the events are the processors' tests'

    async def failed() -> None:
        pass

    playback = Playback(PromptAudio(ScriptedVoice()), GRACE_S, emit)
    playback.output = CapturingOutput()  # type: ignore[assignment]
    timer = InputTimer(int(NO_INPUT_S * 1000), int(INTER_DIGIT_S * 1000))
    listener = Listener(playback, timer, emit, 400, 300, lambda: False, failed)
    return Inbox(playback, timer, listener, audio_stall_ms=2000,
                 max_queued_audio=max_queued_audio)


def later(delay_s: float, box: Inbox, event: Any) -> None:
    asyncio.get_running_loop().call_later(delay_s, box.push, event)


def test_audio_beyond_the_cap_is_dropped_keys_and_hangups_never_are() -> None:
    async def scenario() -> None:
        box = inbox(max_queued_audio=2)
        for _ in range(5):
            box.push(AudioIn(QUIET))
        box.push(DigitIn("1"))
        box.push(CallerHangup())
        assert (box.queued_audio, box.dropped_audio) == (2, 3)
        assert await box.next_input() == Key("1")
        assert box.queued_audio == 0  # the audio before the key was heard first
        assert await box.next_input() == Hangup("")

    run_virtual(scenario())


def test_no_input_runs_from_the_end_of_the_prompt() -> None:
    async def scenario() -> None:
        box = inbox()
        await box.playback.say(["一二三"], ["utter_a"], voice_locale())
        later(0.3, box, PlaybackDone("utter_a-1"))
        assert await box.next_input() == Timeout("no_input")
        assert now() == pytest.approx(0.3 + NO_INPUT_S)

    run_virtual(scenario())


def test_a_key_cuts_the_prompt_and_starts_the_inter_digit_pause() -> None:
    async def scenario() -> None:
        box = inbox()
        await box.playback.say(["一二三"], ["utter_a"], voice_locale())
        later(0.1, box, DigitIn("7"))
        assert await box.next_input() == Key("7")
        assert box.playback.output.cleared == 1  # type: ignore[attr-defined]
        assert await box.next_input(collecting=True) == Timeout("digits")
        assert now() == pytest.approx(0.1 + INTER_DIGIT_S)

    run_virtual(scenario())


def test_input_already_waiting_wins_over_a_timer_run_out() -> None:
    async def scenario() -> None:
        box = inbox()
        box.timer.start(collecting=False)
        await asyncio.sleep(NO_INPUT_S + 1)  # overdue, but a key came first
        box.push(DigitIn("2"))
        assert await box.next_input() == Key("2")

    run_virtual(scenario())


def test_the_last_prompts_are_heard_out_or_waited_for_at_most_their_time() -> None:
    async def scenario() -> None:
        box = inbox()
        await box.playback.say(["一二三"], [None], voice_locale())  # never reported
        await box.wait_for_playback()
        assert now() == pytest.approx(0.3 + GRACE_S)
        box = inbox()
        await box.playback.say(["一二三"], [None], voice_locale())
        later(0.2, box, PlaybackDone("prompt-1"))
        await box.wait_for_playback()
        assert now() == pytest.approx(0.3 + GRACE_S + 0.2)

    run_virtual(scenario())
