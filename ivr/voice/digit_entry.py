"""The caller's keys and the timers that wait for them.

A key is a key menu's choice (ivr/voice/keypad.py), one digit of an entry (a card number or
PIN, ended by ``#``, by the inter-digit timer or at its longest) or an entry of one key.
The input timer is either the no-input timer (silence after a prompt) or the inter-digit
timer (a pause that ends an entry). Both know nothing of audio or of the dialogue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ivr.voice.keypad import KeyChoice, KeyMenu

NO_INPUT = "no_input"
DIGITS = "digits"


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class InputTimer:
    """When waiting for the caller stops counting as waiting: ``kind`` is ``no_input`` or
    ``digits``; ``deadline`` None while it is off (a prompt plays, the caller talks, the
    dialogue is thinking). ``clock``: the event loop's, unless a test gives its own."""

    def __init__(self, no_input_ms: int, inter_digit_ms: int,
                 clock: Callable[[], float] = _loop_time) -> None:
        self.no_input_s = no_input_ms / 1000
        self.inter_digit_s = inter_digit_ms / 1000
        self.clock = clock
        self.deadline: float | None = None
        self.kind = NO_INPUT

    @property
    def running(self) -> bool:
        return self.deadline is not None

    def start(self, collecting: bool) -> None:
        """Start waiting: for the next key of an entry being collected, else for any input."""
        if collecting:
            self.kind = DIGITS
            self.deadline = self.clock() + self.inter_digit_s
        else:
            self.kind = NO_INPUT
            self.deadline = self.clock() + self.no_input_s

    def after_key(self, digit: str, collecting: bool) -> None:
        """A key was pressed: the inter-digit pause runs from it. It ends an entry when
        one is being collected, or the key began one; after a lone ``#`` it is no-input."""
        self.deadline = self.clock() + self.inter_digit_s
        self.kind = DIGITS if collecting or digit != "#" else NO_INPUT

    def stop(self) -> None:
        self.deadline = None

    def caller_speaking(self) -> None:
        """The caller is talking: no-input is off (an entry's pause still runs)."""
        if self.kind == NO_INPUT:
            self.deadline = None

    def seconds_left(self) -> float:
        assert self.deadline is not None
        return max(0.0, self.deadline - self.clock())


class DigitEntry:
    """Keys collecting into one entry while the dialogue asks for a card number or PIN;
    elsewhere every key counts on its own. ``menu``: the key menu the caller was just
    offered (a keys-only caller), whose keys are choices."""

    def __init__(self, max_digits: int) -> None:
        self.max_digits = max_digits
        self.keys = ""  # the entry so far
        self.menu: KeyMenu | None = None

    @property
    def collecting(self) -> bool:
        return bool(self.keys)

    def choice(self, digit: str) -> KeyChoice | None:
        """What the key means in the menu on offer, if it is one of its keys."""
        return self.menu.keys.get(digit) if self.menu else None

    def key(self, digit: str, secret_entry: bool) -> str | None:
        """Take a key: the entry it completes (ending with ``#``), or None while an entry
        collects (or for a lone ``#``). ``secret_entry``: the dialogue is asking for a card
        number or PIN, so keys collect until ``#`` or the longest entry."""
        if secret_entry and digit != "#":
            self.keys += digit
            if len(self.keys) < self.max_digits:
                return None
        elif digit != "#":
            self.keys = digit
        if not self.keys:
            return None
        entry, self.keys = self.keys + "#", ""
        return entry

    def timed_out(self, kind: str) -> str | None:
        """The input timer ran out: the entry so far if the inter-digit pause ended it,
        else None (no input)."""
        if kind == DIGITS and self.keys:
            entry, self.keys = self.keys + "#", ""
            return entry
        return None
