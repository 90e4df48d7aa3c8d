"""Prompt audio: text to telephone audio through a pluggable TTS, with a cache, and a
recorded WAV per response name that overrides TTS (banks record their key prompts)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import subprocess
import uuid
import wave
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from ivr.core.paths import inside
from ivr.errors import IvrError
from ivr.voice.audio import load_audio_file, to_telephone

log = logging.getLogger(__name__)


class TtsError(IvrError):
    """Speech synthesis failed."""


class Tts(Protocol):
    async def synthesize(self, text: str, voice: str) -> bytes:
        """``text`` spoken by ``voice``, as telephone audio."""


class EspeakTts:
    """espeak-ng, the embedded default: robotic, but local, fast and in every language."""

    def __init__(self, rate_wpm: int = 150, binary: str = "espeak-ng") -> None:
        self.rate_wpm = rate_wpm
        self.binary = binary
        self._voices: frozenset[str] | None = None

    def installed_voices(self) -> frozenset[str]:
        """espeak-ng's voices (``ko``, ``cmn``, ...); an unknown one it silently replaces
        with its default (English), so it is checked here instead."""
        if self._voices is None:
            try:
                listing = subprocess.run([self.binary, "--voices"], capture_output=True,
                                         text=True, timeout=30).stdout
            except FileNotFoundError:
                raise TtsError(f"{self.binary} is not installed (scripts/setup.sh installs it)") \
                    from None
            self._voices = frozenset(line.split()[1] for line in listing.splitlines()[1:]
                                     if len(line.split()) > 1)
        return self._voices

    async def synthesize(self, text: str, voice: str) -> bytes:
        # A thread, not asyncio's subprocess API: that needs a child watcher, which the
        # event-loop policy Rasa's dependencies install does not provide.
        return await asyncio.to_thread(self._synthesize, text, voice)

    def _synthesize(self, text: str, voice: str) -> bytes:
        if voice.split("+")[0] not in self.installed_voices():  # ko+f2: voice ko, variant f2
            raise TtsError(f"{self.binary} has no voice {voice!r}")
        try:
            # The text goes on stdin, so a prompt can never be read as an option.
            proc = subprocess.run([self.binary, "-v", voice, "-s", str(self.rate_wpm), "--stdout"],
                                  input=text.encode("utf-8"), capture_output=True, timeout=30)
        except FileNotFoundError:
            raise TtsError(f"{self.binary} is not installed (scripts/setup.sh installs it)") \
                from None
        except subprocess.TimeoutExpired:
            raise TtsError(f"{self.binary} took over 30 s") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")[:200]
            raise TtsError(f"{self.binary} -v {voice} failed: {err}")
        with wave.open(io.BytesIO(proc.stdout)) as w:
            pcm = w.readframes(w.getnframes())
            return to_telephone(pcm, w.getframerate(), w.getnchannels(), w.getsampwidth())


class PromptAudio:
    """What a prompt sounds like: a recording if the bank made one, else cached TTS.

    Recordings live at ``<recordings>/<locale>/<response name>.wav``. Synthesised audio is
    cached in memory (bounded) and on disk, keyed by voice and text, so a prompt is
    synthesised once per deployment, not once per call.
    """

    def __init__(self, tts: Tts, recordings: Path | None = None, cache_dir: Path | None = None,
                 memory_items: int = 512) -> None:
        self.tts = tts
        self.recordings = recordings
        self.cache_dir = cache_dir
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_items = memory_items
        self._locks: dict[str, asyncio.Lock] = {}

    async def render(self, text: str, voice: str, locale: str, name: str | None = None) -> bytes:
        if name and self.recordings:
            recorded = self.recordings / locale / f"{name}.wav"
            if recorded.is_file():
                return await self._cached(f"rec:{recorded}", lambda: asyncio.to_thread(
                    load_audio_file, recorded))
        key = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()[:24]
        return await self._cached(key, lambda: self._synthesize(key, text, voice))

    async def _cached(self, key: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        async with self._locks.setdefault(key, asyncio.Lock()):  # synthesise once
            if key not in self._memory:
                self._memory[key] = await make()
                if len(self._memory) > self._memory_items:
                    self._memory.popitem(last=False)
        self._locks.pop(key, None)
        return self._memory[key]

    async def _synthesize(self, key: str, text: str, voice: str) -> bytes:
        path = self.cache_dir / f"{key}.pcm" if self.cache_dir else None
        if path and path.is_file():
            return await asyncio.to_thread(path.read_bytes)
        pcm = await self.tts.synthesize(text, voice)
        if path:
            await asyncio.to_thread(self._keep, key, pcm)
        return pcm

    def _keep(self, key: str, pcm: bytes) -> None:
        """Cache synthesised audio on disk, only ever inside the cache folder (``key`` is
        a hash, but a path is checked wherever the engine writes one)."""
        assert self.cache_dir is not None
        path = inside(self.cache_dir, f"{key}.pcm")
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a concurrent process never reads half a file. The temporary name is this
        # writer's own: engines sharing the folder may synthesise the same prompt at once.
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(pcm)
        tmp.replace(path)
