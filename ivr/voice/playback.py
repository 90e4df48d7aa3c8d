"""What the caller hears: prompt audio through the transport, and the call's recording.

Each prompt goes out under a mark and stays pending until the transport reports it played
(or, should it never report, until the prompt's length plus a grace has passed). A barge-in
drops what is still pending, if every pending prompt may be interrupted. The recording lays
the prompts against the caller's audio, and loses what a barge-in cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from ivr.calllog.recording import RecordingTrack
from ivr.core.events import BargedIn, Emit, Failed, PromptPlayed
from ivr.dialogue.call import Call
from ivr.voice.audio import duration_ms
from ivr.voice.events import CallOutput
from ivr.voice.tts import PromptAudio
from ivr.voice.voice_locale import VoiceLocale

log = logging.getLogger(__name__)


class Playback:
    """One call's prompts. ``output``: the transport (it sets it once the call is on);
    ``call``: the dialogue once it has begun (a failed prompt escalates it, and the last
    words of an ended call are heard out); ``recording``: the call's, if recorded."""

    def __init__(self, prompts: PromptAudio, grace_s: float, emit: Emit,
                 call_id: str = "") -> None:
        self.prompts = prompts
        self.grace_s = grace_s  # a prompt counts as heard this long after its length
        self.emit = emit
        self.call_id = call_id
        self.output: CallOutput = None  # type: ignore[assignment]  # a transport sets it
        self.call: Call | None = None
        self.recording: RecordingTrack | None = None
        self.pending: dict[str, bool] = {}  # prompt marks not yet heard -> interruptible
        self.play_until = 0.0  # when the last prompt sent counts as heard at the latest
        self._marks = 0

    @property
    def playing(self) -> bool:
        return bool(self.pending)

    @property
    def interruptible(self) -> bool:
        """Something plays and all of it may be cut by the caller."""
        return bool(self.pending) and all(self.pending.values())

    @property
    def must_be_heard(self) -> bool:
        """A prompt plays that the caller cannot answer until they heard it out."""
        return bool(self.pending) and not all(self.pending.values())

    def seconds_left(self) -> float:
        """Until the prompts sent count as heard even with no report from the transport."""
        return max(0.0, self.play_until - asyncio.get_running_loop().time())

    async def say(self, prompts: Sequence[str], names: Sequence[str | None],
                  voice: VoiceLocale, interruptible: bool = True) -> None:
        loop = asyncio.get_running_loop()
        names = list(names) + [None] * (len(prompts) - len(names))
        for text, name in zip(prompts, names, strict=False):
            try:
                started = time.perf_counter()
                pcm = await self.prompts.render(text, voice.tts_voice, voice.locale, name)
                render_s = time.perf_counter() - started  # synthesis, or the cache
            except Exception:
                log.exception("call %s: no audio for prompt %r", self.call_id, name)
                self.emit(Failed, error="tts", prompt=name)
                if self.call and not self.call.ended:
                    self.call.fail_over("tts")  # a caller who cannot hear us needs a person
                continue
            self._marks += 1
            mark = f"{name or 'prompt'}-{self._marks}"
            # The last words of a call ("transferring you", goodbye) are heard out too.
            ending = self.call is not None and self.call.ended
            self.pending[mark] = interruptible and not ending and name not in voice.play_through
            start = max(loop.time(), self.play_until)
            self.play_until = start + duration_ms(pcm) / 1000 + self.grace_s
            self.emit(PromptPlayed, name=name, text=text, mark=mark, ms=round(duration_ms(pcm)),
                      interruptible=self.pending[mark], render_s=round(render_s, 4))
            if self.recording:
                self.recording.engine(pcm)
            await self.output.play(pcm, mark, text)

    def played(self, mark: str) -> bool:
        """The transport reports a prompt played; True when it was the last one pending."""
        return self.pending.pop(mark, None) is not None and not self.pending

    def assume_heard(self) -> None:
        """The transport never reported playback, and the prompts' time is up: heard."""
        self.pending.clear()

    async def barge_in(self) -> None:
        """The caller interrupts: what they have not heard is dropped, if it may be."""
        if self.interruptible:
            self.emit(BargedIn, marks=list(self.pending))
            self.pending.clear()
            if self.recording:
                self.recording.cut()
            await self.output.clear()
