"""A caller's inputs, whatever brought them: a voice session, ``ivr simulate`` or
``ivr chat`` (both from a script or a terminal) and ``ivr replay`` (from the call log).
Each goes through ``Call.take``, the one path into the dialogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Say:
    """Words the caller said (``asr``: how the recogniser heard them, for the log)."""

    text: str
    asr: dict[str, Any] | None = None


@dataclass(frozen=True)
class Unintelligible:
    """Speech the recogniser could match to nothing the caller may say here."""

    heard: str = ""
    asr: dict[str, Any] | None = None


@dataclass(frozen=True)
class Keys:
    """Keys pressed; a trailing ``#`` ends an entry."""

    keys: str


@dataclass(frozen=True)
class Choice:
    """A key menu's choice (ivr/voice/keypad.py): the request the key names."""

    key: str
    intent: str
    entities: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Silence:
    """The caller said nothing before the no-input timer ran out."""


@dataclass(frozen=True)
class Hangup:
    """The caller hung up (``heard``: what they were saying as they did)."""

    heard: str = ""


CallerInput = Say | Unintelligible | Keys | Choice | Silence | Hangup
