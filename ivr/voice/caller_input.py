"""Turn-taking: the inbound events a transport pushes, drained in order into the caller's
next input, one at a time.

Between two inputs the prompts play (``Playback``), the caller's audio is heard
(``Listener``: barge-in, endpointing) and the input timer runs (``InputTimer``: no input,
the pause that ends an entry). What comes out is an utterance, a key, a timer that ran out
or the caller hanging up; the session hands it to the dialogue.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ivr.core.inputs import Hangup
from ivr.voice.digit_entry import InputTimer
from ivr.voice.events import AudioIn, CallerHangup, DigitIn, InboundEvent, PlaybackDone
from ivr.voice.listening import Listener, Speech
from ivr.voice.playback import Playback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Key:
    digit: str


@dataclass(frozen=True)
class Timeout:
    kind: str  # no_input | digits


# What the line yields: a key or a timer still goes through digit entry, and speech through
# what the recogniser made of it, before it is a caller input (ivr.core.inputs) for Call.
LineInput = Speech | Key | Timeout | Hangup


class Inbox:
    """One call's inbound events and the wait for the caller's next input."""

    def __init__(self, playback: Playback, timer: InputTimer, listener: Listener,
                 audio_stall_ms: int, max_queued_audio: int, call_id: str = "") -> None:
        self.playback = playback
        self.timer = timer
        self.listener = listener
        self.audio_stall_s = audio_stall_ms / 1000  # no caller audio this long: it ended
        self.max_queued_audio = max_queued_audio
        self.call_id = call_id
        self.queued_audio = 0  # caller audio frames received and not yet heard
        self.dropped_audio = 0
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()

    def push(self, event: InboundEvent) -> None:
        """Take an inbound event; never blocks. Audio beyond the cap is dropped (the call is
        far behind real time) so a flood cannot grow memory; keys and hangups never are."""
        if isinstance(event, AudioIn):
            if self.queued_audio >= self.max_queued_audio:
                if not self.dropped_audio:
                    log.warning("call %s: audio backlog full, dropping frames", self.call_id)
                self.dropped_audio += 1
                return
            self.queued_audio += 1
        self._events.put_nowait(event)

    async def next_input(self, collecting: bool = False) -> LineInput:
        """Wait for the caller's next input, handling playback, barge-in and timers.
        ``collecting``: an entry is being keyed, so silence is the inter-digit pause."""
        playback, timer, listener = self.playback, self.timer, self.listener
        while True:
            timers: list[tuple[float, str]] = []  # (seconds left, which)
            if playback.playing:
                timers.append((playback.seconds_left(), "playback"))
            elif not timer.running and not listener.mid_utterance:
                # A barge-in, or sound that never became words ("음" then nothing): the
                # caller is not speaking now, so no-input runs again (never dead air).
                timer.start(collecting)
            if not playback.playing and timer.running:
                timers.append((timer.seconds_left(), "deadline"))
            if listener.mid_utterance:  # the caller's audio may stop mid-word: never wait forever
                timers.append((self.audio_stall_s, "stalled"))
            timeout, which = min(timers) if timers else (None, "")
            try:  # input already waiting wins over a timer that has run out meanwhile
                event = self._events.get_nowait() if not self._events.empty() else \
                    await asyncio.wait_for(self._events.get(), timeout)
            except asyncio.TimeoutError:
                if which == "stalled":
                    speech = await listener.end_stalled_utterance()
                    if speech:
                        return speech
                    continue
                if which == "playback":  # the transport never confirmed playback: heard
                    playback.assume_heard()
                    timer.start(collecting)
                    continue
                timer.stop()
                return Timeout(timer.kind)
            if isinstance(event, PlaybackDone):
                if playback.played(event.mark):
                    timer.start(collecting)
            elif isinstance(event, CallerHangup):
                return Hangup(await listener.heard_so_far())
            elif isinstance(event, DigitIn):
                await playback.barge_in()
                timer.after_key(event.digit, collecting)
                return Key(event.digit)
            elif isinstance(event, AudioIn):
                self._take_audio(event)
                speech = await listener.hear(event.pcm)
                if speech:
                    return speech

    async def wait_for_playback(self) -> None:
        """Let the last prompts (goodbye, "transferring you") be heard before ending."""
        while self.playback.playing:
            try:
                event = await asyncio.wait_for(self._events.get(),
                                               self.playback.seconds_left())
            except asyncio.TimeoutError:
                return
            if isinstance(event, PlaybackDone):
                self.playback.played(event.mark)
            elif isinstance(event, AudioIn):
                self._take_audio(event)
            elif isinstance(event, CallerHangup):
                return

    def _take_audio(self, event: AudioIn) -> None:
        """Inbound audio leaves the queue for the listener (the call's clock, the recording)."""
        self.queued_audio -= 1
        self.listener.take_audio(event.pcm)
