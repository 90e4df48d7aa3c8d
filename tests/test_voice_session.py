"""The voice session on its own (ivr/voice/session.py): whole calls from a scripted phone
through a capturing transport to a scripted dialogue, on a virtual clock (tests/
voice_fakes.py). No model, no sockets, no real time: each call takes milliseconds, and
every timer is checked to the millisecond."""

from __future__ import annotations

import pytest
from voice_fakes import (
    ASK_CARD,
    BALANCE,
    FAILURE,
    GREETING,
    KEYPAD,
    MENU,
    MS_PER_CHARACTER,
    SETTINGS,
    STILL_THERE,
    TRANSFER,
    Phone,
    ScriptedDialogue,
    call,
    services,
    voice_locale,
)

from ivr.core.events import (
    BargedIn,
    CallEnded,
    CallStarted,
    Failed,
    Greeted,
    HungUp,
    KeyPressed,
    LanguageChosen,
    PromptPlayed,
    Routed,
    TimerFired,
    TranscriptFinal,
    TranscriptPartial,
    TurnTaken,
)
from ivr.voice.events import AudioIn
from ivr.voice.session import VoiceSession

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

GREETING_S = len(GREETING) * MS_PER_CHARACTER / 1000
NO_INPUT_S = SETTINGS.no_input_ms / 1000


def said(text: str) -> float:
    return len(text) * MS_PER_CHARACTER / 1000


async def ask_for_balance(phone: Phone) -> None:
    """Hear the greeting out, then say "查余额" (the dialogue then asks for a card)."""
    await phone.wait(GREETING_S + 0.2)
    await phone.speak(600)
    await phone.wait(0.5 + said(ASK_CARD))


def test_a_caller_who_interrupts_the_greeting_stops_it_and_is_heard() -> None:
    async def script(phone: Phone) -> None:
        await phone.wait(0.4)
        await phone.speak(600)  # during the greeting (1.3 s)

    record = call(services(["查余额"]), script)
    assert record.types()[:6] == [CallStarted, Greeted, PromptPlayed, TranscriptPartial,
                                  BargedIn, TranscriptFinal]
    greeting_mark = record.of(PromptPlayed)[0].mark
    assert record.of(BargedIn)[0].marks == [greeting_mark]
    # The transport was told to stop, and the greeting never played to its end.
    actions = [(what, mark) for _, what, mark in record.transport.log]
    assert ("clear", "") in actions and ("played", greeting_mark) not in actions
    # 300 ms of voice (barge_in_min_speech_ms) after the caller began at 0.4 s.
    assert record.at(BargedIn)[0] == pytest.approx(0.4 + 0.3, abs=0.021)
    assert record.result["turns"][0]["input"]["say"] == "查余额"
    assert record.transport.played[1] == ASK_CARD


def test_a_cough_does_not_cut_a_prompt() -> None:
    async def script(phone: Phone) -> None:
        await phone.wait(0.3)
        await phone.speak(200)  # shorter than barge_in_min_speech_ms
        await phone.wait(3)
        phone.hang_up()

    record = call(services(["查余额"]), script)
    assert BargedIn not in record.types()
    greeting_mark = record.of(PromptPlayed)[0].mark
    assert (GREETING_S, "played", greeting_mark) in [
        (round(t, 3), what, mark) for t, what, mark in record.transport.log]
    assert record.result["turns"] == [{"input": {"hangup": True}}]  # the noise: no turn


def test_keys_collect_into_one_entry_until_hash_masked_everywhere() -> None:
    async def script(phone: Phone) -> None:
        await ask_for_balance(phone)
        await phone.keys("6222021234567890")
        phone.key("#")

    record = call(services(["查余额"]), script)
    keyed = record.result["turns"][1]
    assert keyed["input"]["dtmf"].endswith("7890") and "622202123456" not in str(keyed)
    assert [d.digit for d in record.of(KeyPressed)] == ["*"] * 16 + ["#"]
    at = [d.at_ms for d in record.of(KeyPressed) if d.at_ms is not None]
    assert len(at) == 17 and at == sorted(at)
    assert at[-1] - at[0] >= 4500  # on the caller's audio clock
    assert record.dialogue.acted_on == ["call_start", "check_balance", "dtmf", "no_input",
                                        "no_input"]
    assert record.transport.played[2] == BALANCE


def test_an_entry_ends_after_the_inter_digit_pause() -> None:
    async def script(phone: Phone) -> None:
        await ask_for_balance(phone)
        await phone.keys("1234", gap_s=0.5)

    record = call(services(["查余额"]), script)
    last_key = record.at(KeyPressed)[-1]
    timers = record.of(TimerFired)
    assert timers[0].timer == "digits"
    assert record.at(TimerFired)[0] == pytest.approx(last_key + SETTINGS.inter_digit_ms / 1000)
    assert record.result["turns"][1]["input"] == {"dtmf": "1234"}
    assert record.dialogue.acted_on[:3] == ["call_start", "check_balance", "dtmf"]


def test_an_entry_ends_at_its_longest() -> None:
    async def script(phone: Phone) -> None:
        await ask_for_balance(phone)
        await phone.keys("1" * SETTINGS.max_digits, gap_s=0.1)

    record = call(services(["查余额"]), script)
    turn = record.of(TurnTaken)[1]
    assert record.at(TurnTaken)[1] == pytest.approx(record.at(KeyPressed)[-1])  # no pause
    assert turn.input["dtmf"].endswith("1111") and turn.entry == "card"


def test_silence_reprompts_then_escalates_and_the_transfer_is_heard_out() -> None:
    record = call(services())
    assert [t.timer for t in record.of(TimerFired)] == ["no_input", "no_input"]
    first, second = record.at(TimerFired)
    assert first == pytest.approx(GREETING_S + NO_INPUT_S)
    assert second == pytest.approx(first + said(STILL_THERE) + NO_INPUT_S)
    assert record.transport.played == [GREETING, STILL_THERE, TRANSFER]
    transfer = record.of(PromptPlayed)[-1]
    assert transfer.interruptible is False  # the call has ended: its last words
    ended = [what for _, what, _ in record.transport.log][-2:]
    assert ended == ["played", "end"]  # "transferring you" played to its end first
    assert record.result["outcome"] == "escalated" and record.of(Routed)


def test_a_transport_that_never_reports_playback_gets_the_grace_period() -> None:
    record = call(services(), confirms=False)
    # No PlaybackDone: the greeting counts as heard at its length plus the grace.
    assert record.at(TimerFired)[0] == pytest.approx(
        GREETING_S + SETTINGS.playback_grace_s + NO_INPUT_S)


def test_a_stuck_dialogue_sends_the_caller_to_an_agent() -> None:
    async def script(phone: Phone) -> None:
        await phone.wait(GREETING_S + 0.2)
        await phone.speak(600)

    voice = services(["查余额"], engines={"zh": ScriptedDialogue(stuck_on="check_balance")})
    record = call(voice, script)
    assert [(e.error, e.prompt) for e in record.of(Failed)] == [("dialogue_timeout", None)]
    assert record.at(Failed)[0] == pytest.approx(
        record.at(TranscriptFinal)[0] + SETTINGS.dialogue_timeout_s)
    assert record.transport.played[-1] == FAILURE
    assert record.result["outcome"] == "escalated"


def test_a_caller_who_hangs_up_mid_sentence_is_kept_for_the_record() -> None:
    async def script(phone: Phone) -> None:
        await phone.wait(GREETING_S + 0.2)
        await phone.speak(600)
        phone.hang_up()

    record = call(services(["查余额"]), script)
    assert [e.heard for e in record.of(HungUp)] == ["查余额"]
    assert record.result["turns"] == [{"input": {"hangup": True, "heard": "查余额"}}]


def test_a_stalled_stream_ends_the_utterance() -> None:
    async def script(phone: Phone) -> None:
        await phone.wait(GREETING_S + 0.2)
        await phone.speak(400)
        phone.sending = False  # the caller's audio stops mid-word
        await phone.wait(SETTINGS.audio_stall_ms / 1000 + 1)
        phone.sending = True

    record = call(services(["查余额"]), script)
    speech = record.of(TranscriptFinal)[0]
    assert speech.stalled is True and speech.text == "查余额"
    stalled_at = GREETING_S + 0.2 + 0.4
    assert record.at(TranscriptFinal)[0] == pytest.approx(
        stalled_at + SETTINGS.audio_stall_ms / 1000, abs=0.021)


def test_a_keys_only_caller_hears_a_menu_and_chooses_by_key() -> None:
    async def script(phone: Phone) -> None:
        await phone.wait(0.5)
        phone.key("1")  # during the menu: it stops, the key is the choice
        await phone.wait(0.5 + said(ASK_CARD))
        await phone.keys("4321")
        phone.key("#")

    record = call(services(locales={"zh": voice_locale(keypad=KEYPAD)}, hears=False), script)
    assert record.transport.played[:2] == ["您好。", MENU.prompt]  # worded for keys
    assert BargedIn in record.types()
    assert record.result["turns"][0]["input"] == {"dtmf": "1", "menu": "check_balance"}
    # While a card number is keyed no menu is offered: the keys are the entry.
    assert record.transport.played[2] == ASK_CARD
    assert record.transport.played[3:5] == [BALANCE, MENU.prompt]
    assert record.dialogue.acted_on[:3] == ["call_start", "check_balance", "dtmf"]


def test_the_caller_picks_a_language_by_key() -> None:
    async def script(phone: Phone) -> None:
        await phone.wait(0.5)
        phone.key("2")

    voice = services(engines={"zh": ScriptedDialogue(), "en": ScriptedDialogue()},
                     locales={"zh": voice_locale(), "en": voice_locale("en", "2")})
    record = call(voice, script)
    assert record.transport.played[:2] == ["zh请按1", "en请按2"]  # the default first
    assert [(e.locale, e.by) for e in record.of(LanguageChosen)] == [("en", "keys")]
    assert record.result["locale"] == "en"


def test_a_call_turned_away_hears_the_busy_prompt_only() -> None:
    class Busy(VoiceSession):
        def __init__(self, *args: object, **kw: object) -> None:
            super().__init__(*args, **kw)  # type: ignore[arg-type]
            self.turned_away = "over_capacity"

    record = call(services(), session_class=Busy)
    assert record.types() == [CallStarted, PromptPlayed, CallEnded]
    assert record.result["outcome"] == "busy" and record.result["reason"] == "over_capacity"


def test_audio_beyond_the_backlog_is_dropped_and_counted() -> None:
    voice = services()
    session = VoiceSession(voice, output=None)
    for _ in range(voice.settings.max_queued_audio + 7):
        session.push(AudioIn(bytes(320)))
    assert session.queued_audio == voice.settings.max_queued_audio
    assert session._inbox.dropped_audio == 7
