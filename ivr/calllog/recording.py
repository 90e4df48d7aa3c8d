"""Call recordings: one WAV file per call, 8 kHz 16-bit, caller on the left channel and
the engine on the right, on the clock of the caller's audio stream (a telephone stream is
continuous, so that is the call's clock). What the caller says while the dialogue collects
a card number or PIN is recorded as silence.
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ivr.voice.audio import SAMPLE_RATE

_HEADER = 44  # a canonical PCM WAV header, as ``wave`` writes it


def interleave(left: bytes, right: bytes) -> bytes:
    stereo = np.empty(len(left) // 2 * 2, dtype=np.int16)
    stereo[0::2] = np.frombuffer(left, dtype=np.int16)
    stereo[1::2] = np.frombuffer(right, dtype=np.int16)
    return stereo.tobytes()


class RecordingTrack:
    """Lays engine audio against the caller's stream and hands stereo chunks to ``sink``.

    Prompt audio waits in a buffer and is laid down as caller audio arrives; a barge-in
    drops what the caller never heard.
    """

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._engine = bytearray()
        self.samples = 0  # the caller clock: samples recorded so far

    @property
    def ms(self) -> int:
        return self.samples * 1000 // SAMPLE_RATE

    def caller(self, pcm: bytes, muted: bool = False) -> None:
        n = len(pcm) - len(pcm) % 2
        engine = bytes(self._engine[:n]).ljust(n, b"\0")
        del self._engine[:n]
        self._sink(interleave(bytes(n) if muted else pcm[:n], engine))
        self.samples += n // 2

    def engine(self, pcm: bytes) -> None:
        self._engine += pcm

    def cut(self) -> None:
        """Barge-in: the transport dropped the rest of the prompt."""
        self._engine.clear()

    def close(self) -> None:
        """The last words (goodbye) are kept after the caller's stream stops."""
        if self._engine:
            rest = bytes(self._engine)
            self._engine.clear()
            self._sink(interleave(bytes(len(rest)), rest))
            self.samples += len(rest) // 2


def caller_audio(path: Path, from_ms: int, to_ms: int) -> bytes:
    """The caller's channel (mono PCM16) of a recording between two times."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        start = from_ms * rate // 1000
        wav.setpos(min(start, wav.getnframes()))
        frames = wav.readframes(max(0, (to_ms - from_ms) * rate // 1000))
        channels = wav.getnchannels()
    samples = np.frombuffer(frames, dtype=np.int16)
    return samples[0::channels].tobytes()


def repair_wav(path: Path) -> int:
    """Fix the lengths in a WAV header left behind by a process that died while writing;
    the bytes of audio it holds (0: none, or not even a header)."""
    if not path.is_file() or path.stat().st_size < _HEADER:
        return 0
    size = path.stat().st_size
    data = size - _HEADER
    data -= data % 4  # whole stereo frames
    with path.open("r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", _HEADER - 8 + data))
        f.seek(40)
        f.write(struct.pack("<I", data))
        f.truncate(_HEADER + data)
    return data
