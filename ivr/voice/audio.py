"""Telephone audio as the engine sees it: 8 kHz, 16-bit signed little-endian, mono PCM.

Transports convert to and from their wire codecs here (mu-law for Twilio); everything past
them handles only this one format.
"""

from __future__ import annotations

import audioop  # deprecated in 3.11, present in the 3.10 Rasa needs; pydub uses it too
from pathlib import Path

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * SAMPLE_WIDTH * FRAME_MS // 1000  # 320


def ulaw_to_pcm(data: bytes) -> bytes:
    return audioop.ulaw2lin(data, SAMPLE_WIDTH)


def pcm_to_ulaw(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, SAMPLE_WIDTH)


def duration_ms(pcm: bytes) -> float:
    return len(pcm) * 1000 / (SAMPLE_RATE * SAMPLE_WIDTH)


def frames(pcm: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    """Fixed-size frames, the last one padded with silence."""
    out = [pcm[i:i + size] for i in range(0, len(pcm), size)]
    if out and len(out[-1]) < size:
        out[-1] = out[-1] + b"\0" * (size - len(out[-1]))
    return out


def to_telephone(pcm: bytes, rate: int, channels: int = 1, width: int = SAMPLE_WIDTH) -> bytes:
    """Any linear PCM to the engine's format."""
    if width != SAMPLE_WIDTH:
        pcm = audioop.lin2lin(pcm, width, SAMPLE_WIDTH)
    if channels == 2:
        pcm = audioop.tomono(pcm, SAMPLE_WIDTH, 0.5, 0.5)
    elif channels != 1:
        raise ValueError(f"{channels}-channel audio is not supported")
    if rate != SAMPLE_RATE:
        pcm, _ = audioop.ratecv(pcm, SAMPLE_WIDTH, 1, rate, SAMPLE_RATE, None)
    return pcm


def load_audio_file(path: Path) -> bytes:
    """A recorded prompt (WAV, or anything ffmpeg reads) in the engine's format."""
    from pydub import AudioSegment

    segment = AudioSegment.from_file(path)
    segment = segment.set_frame_rate(SAMPLE_RATE).set_channels(1).set_sample_width(SAMPLE_WIDTH)
    return segment.raw_data


class SpeechDetector:
    """Energy voice-activity detection: is the caller speaking, and for how long?

    Barge-in needs a sustained run of speech (a cough or a click must not cut a prompt),
    and the ASR's own start-of-speech comes too late for that; RMS energy per frame is
    what telephony endpoints have always used for it.
    """

    def __init__(self, threshold: int = 400, hangover_ms: int = 200) -> None:
        self.threshold = threshold
        self.hangover_ms = hangover_ms
        self.speech_ms = 0.0  # length of the current run of speech
        self._quiet_ms = 0.0

    @property
    def quiet_ms(self) -> float:
        """How long the current run of speech has been quiet (0 while a frame is loud)."""
        return self._quiet_ms

    def feed(self, pcm: bytes) -> float:
        """Take audio; return how long the caller has been speaking (0 when not)."""
        for frame in frames(pcm):
            ms = FRAME_MS
            if audioop.rms(frame, SAMPLE_WIDTH) >= self.threshold:
                self.speech_ms += ms + self._quiet_ms
                self._quiet_ms = 0.0
            elif self.speech_ms:
                self._quiet_ms += ms
                if self._quiet_ms > self.hangover_ms:  # short gaps belong to the same speech
                    self.speech_ms = self._quiet_ms = 0.0
        return self.speech_ms
