"""Prompt playback on its own (ivr/voice/playback.py): a capturing transport, scripted
prompt audio, a stand-in call and the virtual clock (tests/voice_fakes.py)."""

from __future__ import annotations

import asyncio

import pytest
from voice_fakes import (
    MS_PER_CHARACTER,
    CapturingOutput,
    ScriptedVoice,
    now,
    run_virtual,
    voice_locale,
)

from ivr.calllog.recording import RecordingTrack
from ivr.core.events import BargedIn, CallEvent, Failed, PromptPlayed, emitter
from ivr.voice.playback import Playback
from ivr.voice.tts import PromptAudio

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

GRACE_S = 1.0


class StandInCall:
    def __init__(self, ended: bool = False) -> None:
        self.ended = ended
        self.failed: list[str] = []

    def fail_over(self, error: str) -> None:
        self.failed.append(error)
        self.ended = True


def playback() -> tuple[Playback, CapturingOutput, list[CallEvent]]:
    events: list[CallEvent] = []
    player = Playback(PromptAudio(ScriptedVoice()), GRACE_S, emitter(events.append, "call-1"),
                      "call-1")
    player.output = CapturingOutput()
    return player, player.output, events  # type: ignore[return-value]


def test_prompts_go_out_under_numbered_marks_and_stay_pending_until_played() -> None:
    async def scenario() -> None:
        player, output, events = playback()
        await player.say(["一二三", "四五"], ["utter_a"], voice_locale())
        assert output.sent == [("utter_a-1", "一二三"), ("prompt-2", "四五")]
        assert [e.ms for e in events if isinstance(e, PromptPlayed)] == [
            3 * MS_PER_CHARACTER, 2 * MS_PER_CHARACTER]
        # Queued back to back: heard at the latest when both have played, each with its
        # grace (a transport that never reports playback still moves on).
        assert player.seconds_left() == pytest.approx(0.3 + GRACE_S + 0.2 + GRACE_S)
        assert player.interruptible
        assert player.played("utter_a-1") is False  # another is still playing
        assert player.played("unknown") is False
        assert player.played("prompt-2") is True
        assert not player.playing

    run_virtual(scenario())


def test_a_barge_in_drops_what_is_unheard_and_cuts_the_recording() -> None:
    async def scenario() -> None:
        player, output, events = playback()
        chunks: list[bytes] = []
        player.recording = RecordingTrack(chunks.append)
        await player.say(["一二三"], ["utter_a"], voice_locale())
        await player.barge_in()
        assert output.cleared == 1 and not player.playing
        assert isinstance(events[-1], BargedIn) and events[-1].marks == ["utter_a-1"]
        player.recording.close()
        assert chunks == []  # the prompt the caller cut is not in the recording
        await player.barge_in()  # nothing playing: nothing to do
        assert output.cleared == 1

    run_virtual(scenario())


def test_prompts_that_must_be_heard_out_are_not_cut() -> None:
    async def scenario() -> None:
        player, output, events = playback()
        voice = voice_locale(play_through=frozenset({"utter_legal"}))
        await player.say(["通知"], [None], voice, interruptible=False)
        await player.say(["条款"], ["utter_legal"], voice)
        player.call = StandInCall(ended=True)  # a call's last words are heard out too
        await player.say(["再见"], ["utter_goodbye"], voice)
        assert [e.interruptible for e in events if isinstance(e, PromptPlayed)] == [False] * 3
        assert player.must_be_heard
        await player.barge_in()
        assert output.cleared == 0 and len(player.pending) == 3

    run_virtual(scenario())


def test_a_prompt_with_no_audio_escalates_the_call_and_the_rest_still_plays() -> None:
    async def scenario() -> None:
        player, output, events = playback()
        player.call = StandInCall()
        await player.say(["坏了", "转人工"], ["utter_broken", None], voice_locale())
        assert isinstance(events[0], Failed)
        assert (events[0].error, events[0].prompt) == ("tts", "utter_broken")
        assert player.call.failed == ["tts"]
        assert output.sent == [("prompt-1", "转人工")]
        assert player.pending == {"prompt-1": False}  # the call has ended: heard out

    run_virtual(scenario())


def test_later_prompts_queue_after_those_still_playing() -> None:
    async def scenario() -> None:
        player, _, _ = playback()
        await player.say(["一二三四五"], [None], voice_locale())  # 0.5 s
        await asyncio.sleep(0.2)
        await player.say(["一"], [None], voice_locale())
        assert now() == pytest.approx(0.2)
        # The second counts from when the first is heard at the latest.
        assert player.play_until == pytest.approx(0.5 + GRACE_S + 0.1 + GRACE_S)

    run_virtual(scenario())
