"""The voice engine's own vocabulary. Transports translate wire frames into the inbound
events below and implement ``CallOutput``; nothing past them knows which protocol a call
came on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ivr.core.report import CallReport


@dataclass(frozen=True)
class AudioIn:
    pcm: bytes  # telephone audio (ivr.voice.audio)


@dataclass(frozen=True)
class DigitIn:
    digit: str  # one DTMF key: 0-9, *, #


@dataclass(frozen=True)
class PlaybackDone:
    mark: str  # the prompt whose audio has now been played to the caller


@dataclass(frozen=True)
class CallerHangup:
    reason: str = "hangup"


InboundEvent = AudioIn | DigitIn | PlaybackDone | CallerHangup


class CallOutput(Protocol):
    """What a transport does for the engine."""

    async def play(self, pcm: bytes, mark: str, text: str) -> None:
        """Queue a prompt's audio; report ``PlaybackDone(mark)`` once the caller heard it."""

    async def clear(self) -> None:
        """Barge-in: drop whatever audio the caller has not heard yet."""

    async def end(self, report: CallReport) -> None:
        """The call is over (hung up, finished or handed to an agent)."""
