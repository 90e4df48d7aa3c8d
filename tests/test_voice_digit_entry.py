"""Keys and timers on their own (ivr/voice/digit_entry.py): no loop, a clock of our own."""

from __future__ import annotations

import pytest
from voice_fakes import MENU

from ivr.voice.digit_entry import DIGITS, NO_INPUT, DigitEntry, InputTimer

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_secret_entry_collects_until_hash() -> None:
    entry = DigitEntry(max_digits=19)
    assert [entry.key(d, secret_entry=True) for d in "1234"] == [None] * 4
    assert entry.collecting and entry.keys == "1234"
    assert entry.key("#", secret_entry=True) == "1234#"
    assert not entry.collecting


def test_a_secret_entry_ends_at_its_longest() -> None:
    entry = DigitEntry(max_digits=4)
    assert [entry.key(d, secret_entry=True) for d in "1234"] == [None, None, None, "1234#"]
    assert entry.key("5", secret_entry=True) is None  # the next entry begins


def test_elsewhere_every_key_counts_on_its_own_and_a_lone_hash_is_nothing() -> None:
    entry = DigitEntry(max_digits=19)
    assert entry.key("0", secret_entry=False) == "0#"
    assert entry.key("#", secret_entry=False) is None
    assert entry.key("#", secret_entry=True) is None


def test_the_pause_ends_an_entry_but_no_input_does_not() -> None:
    entry = DigitEntry(max_digits=19)
    entry.key("4", secret_entry=True)
    entry.key("2", secret_entry=True)
    assert entry.timed_out(NO_INPUT) is None and entry.keys == "42"  # kept
    assert entry.timed_out(DIGITS) == "42#"
    assert entry.timed_out(DIGITS) is None  # nothing keyed: silence


def test_a_menu_key_is_a_choice_only_while_the_menu_is_offered() -> None:
    entry = DigitEntry(max_digits=19)
    assert entry.choice("1") is None
    entry.menu = MENU
    assert entry.choice("1") == MENU.keys["1"]
    assert entry.choice("7") is None  # not one of its keys: a key like any other


def test_the_no_input_timer_runs_from_the_end_of_the_prompt() -> None:
    clock = Clock()
    timer = InputTimer(no_input_ms=6000, inter_digit_ms=3000, clock=clock)
    assert not timer.running
    timer.start(collecting=False)
    assert timer.kind == NO_INPUT and timer.seconds_left() == pytest.approx(6.0)
    clock.now += 4
    assert timer.seconds_left() == pytest.approx(2.0)
    clock.now += 10
    assert timer.seconds_left() == 0.0  # overdue, never negative
    timer.stop()
    assert not timer.running


def test_while_collecting_the_timer_is_the_inter_digit_pause() -> None:
    clock = Clock()
    timer = InputTimer(no_input_ms=6000, inter_digit_ms=3000, clock=clock)
    timer.start(collecting=True)
    assert timer.kind == DIGITS and timer.seconds_left() == pytest.approx(3.0)


def test_a_key_restarts_the_pause_and_a_lone_hash_means_no_input() -> None:
    clock = Clock()
    timer = InputTimer(no_input_ms=6000, inter_digit_ms=3000, clock=clock)
    timer.after_key("5", collecting=False)
    assert timer.kind == DIGITS and timer.seconds_left() == pytest.approx(3.0)
    timer.after_key("#", collecting=False)
    assert timer.kind == NO_INPUT and timer.seconds_left() == pytest.approx(3.0)
    timer.after_key("#", collecting=True)
    assert timer.kind == DIGITS


def test_the_caller_talking_stops_no_input_but_not_an_entrys_pause() -> None:
    timer = InputTimer(no_input_ms=6000, inter_digit_ms=3000, clock=Clock())
    timer.start(collecting=True)
    timer.caller_speaking()
    assert timer.running
    timer.start(collecting=False)
    timer.caller_speaking()
    assert not timer.running
