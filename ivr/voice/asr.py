"""Speech recognition: one Vosk model per locale, loaded once; one recogniser per call.

A recogniser is a stream: audio goes in, hypotheses (partial, then final at Vosk's end of
utterance) come out. Where the dialogue expects a closed set of answers the recogniser is
switched to Vosk's phrase-list (grammar) mode and its output is mapped to the nearest
allowed phrase; elsewhere it decodes free-form. Vosk calls block for milliseconds to tens
of milliseconds, so they never run on the event loop: a ``Decoder`` runs them on a thread
(``ThreadDecoder``) or, in ``ivr serve``, in a worker process (``ivr.voice.decoders``).
How a model folder is found and read is ``ivr.voice.vosk_model``'s.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ivr.errors import shown
from ivr.voice.audio import SAMPLE_RATE, SpeechDetector, duration_ms
from ivr.voice.vosk_model import (
    SpeechModelError,
    read_vocabulary,
    resolve_model_path,
    with_endpointing,
)

log = logging.getLogger(__name__)

UNKNOWN_WORDS = ("[unk]", "<unk>", "<UNK>")  # what Vosk models call an out-of-grammar word
BATCH_BYTES = 1600  # 100 ms: fewer executor hops than one per 20 ms frame
MIN_PHRASE_SIMILARITY = 0.5
ALTERNATIVES = 3  # n-best hypotheses kept for the call log (trainers see them)


@dataclass(frozen=True)
class Hypothesis:
    text: str  # in grammar mode: the allowed phrase it maps to, or "" for none
    final: bool
    raw: str = ""  # what the recogniser itself said
    alternatives: tuple[dict[str, Any], ...] = ()  # n-best: text and decoder score


class Recognizer(Protocol):
    """One call's speech recogniser."""

    async def expect(self, phrases: Sequence[str] | None) -> None:
        """Listen for one of ``phrases`` from now on (None: free-form speech)."""

    async def accept(self, pcm: bytes) -> Hypothesis | None:
        """Take caller audio; return a new partial or a final hypothesis, if any."""

    async def finish(self) -> Hypothesis:
        """The caller stopped (hung up, or their audio did): what was heard so far, as
        final; the recogniser then listens afresh."""

    def close(self) -> None:
        """The call is over: free what the recogniser holds."""


def nearest_phrase(text: str, phrases: Sequence[str]) -> str:
    """The allowed phrase closest to what was recognised ("" when none is close).

    Grammar-mode output is built from the phrases' words and may mix them
    ("비밀번호 연결"); character similarity brings it back to one phrase.
    """
    text = " ".join(w for w in text.split() if w not in UNKNOWN_WORDS)
    if not text:
        return ""
    squashed = text.replace(" ", "")
    best, score = "", 0.0
    for phrase in phrases:
        s = difflib.SequenceMatcher(None, squashed, phrase.replace(" ", "")).ratio()
        if s > score:
            best, score = phrase, s
    return best if score >= MIN_PHRASE_SIMILARITY else ""


@dataclass
class SpeechModel:
    """A Vosk model, loaded once per locale and shared by every call. The decoding model
    itself loads on first use: ``ivr serve`` decodes in worker processes, each loading its
    own, so the engine's process only needs the vocabulary (hundreds of MB saved)."""

    locale: str
    path: Path
    vocabulary: frozenset[str]
    unknown_word: str | None
    end_of_speech_ms: int = 500
    _overlay: Any = field(default=None, repr=False)  # keeps the config overlay alive
    _model: Any = field(default=None, repr=False)
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self) -> Any:
        """The Vosk model (blocking, about a second the first time)."""
        import vosk

        with self._loading:
            if self._model is None:
                self._model = vosk.Model(self._overlay.name)
            return self._model

    @classmethod
    def load(cls, locale: str, spec: str, end_of_speech_ms: int = 500) -> SpeechModel:
        """Blocking (reads the vocabulary): call it in an executor."""
        import vosk

        path = resolve_model_path(spec)
        if not (path / "am" / "final.mdl").is_file():
            raise SpeechModelError(
                f"{locale}: no Vosk model at {shown(path)} (am/final.mdl missing)")
        vosk.SetLogLevel(-1)
        overlay = with_endpointing(path, end_of_speech_ms)
        vocabulary = read_vocabulary(path)
        unknown = next((w for w in UNKNOWN_WORDS if w in vocabulary), None)
        return cls(locale, path, vocabulary, unknown, end_of_speech_ms, overlay)

    def missing_words(self, phrases: Sequence[str]) -> list[str]:
        return sorted({w for p in phrases for w in p.split() if w not in self.vocabulary})

    def grammar(self, phrases: Sequence[str]) -> str:
        words = [*phrases, *([self.unknown_word] if self.unknown_word else [])]
        return json.dumps(words, ensure_ascii=False)  # Vosk does not decode \u escapes



def new_kaldi_recognizer(model: Any, grammar: str | None) -> Any:
    """Blocking: a Vosk recogniser, free-form or limited to ``grammar`` (a JSON list)."""
    import vosk

    rec = vosk.KaldiRecognizer(model, SAMPLE_RATE, *([grammar] if grammar else []))
    rec.SetMaxAlternatives(ALTERNATIVES)
    return rec


class Decoder(Protocol):
    """One call's Kaldi recogniser, wherever it runs."""

    async def reset(self, grammar: str | None) -> None:
        """A fresh recogniser: free-form, or limited to ``grammar`` (Vosk's JSON list)."""

    async def decode(self, pcm: bytes) -> tuple[bool, str, float]:
        """Feed audio: (utterance ended, Vosk's result or partial JSON, seconds decoding)."""

    async def flush(self, pcm: bytes) -> str:
        """Feed the last audio and end the utterance: Vosk's final result JSON."""

    def close(self) -> None:
        """The call is over."""


class ThreadDecoder:
    """Decoding on ``executor``'s threads (None: the loop's default), in this process."""

    def __init__(self, model: SpeechModel, executor: Executor | None = None) -> None:
        self._model = model
        self._executor = executor
        self._rec: Any = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def reset(self, grammar: str | None) -> None:
        self._rec = await self._run(new_kaldi_recognizer, self._model.model, grammar)

    async def decode(self, pcm: bytes) -> tuple[bool, str, float]:
        return await self._run(decode_batch, self._rec, pcm)

    async def flush(self, pcm: bytes) -> str:
        return await self._run(flush_final, self._rec, pcm)

    def close(self) -> None:
        self._rec = None


def decode_batch(rec: Any, pcm: bytes) -> tuple[bool, str, float]:
    started = time.perf_counter()
    final = bool(rec.AcceptWaveform(pcm))
    result = rec.Result() if final else rec.PartialResult()
    return final, result, time.perf_counter() - started


def flush_final(rec: Any, pcm: bytes) -> str:
    if pcm:
        rec.AcceptWaveform(pcm)
    return rec.FinalResult()


class VoskRecognizer:
    """A Vosk recogniser for one call, decoding through ``decoder`` (default: threads of
    ``executor``).

    The end of an utterance is Vosk's endpointing. In free-form mode on poor audio Vosk
    can hold a filler word open and never end it, so silence (by energy) that lasts twice
    the configured end-of-speech time after some words ends the utterance as a backstop.
    """

    def __init__(self, model: SpeechModel, executor: Executor | None = None,
                 decoder: Decoder | None = None) -> None:
        self._model = model
        self._decoder = decoder or ThreadDecoder(model, executor)
        self._ready = False
        self._phrases: Sequence[str] | None = None
        self._buffer = b""
        self._partial = ""
        self._quiet = SpeechDetector()
        self._quiet_ms = 0.0
        self._backstop_ms = 2 * model.end_of_speech_ms
        self.audio_s = 0.0  # audio decoded, and the time decoding took: the real-time factor
        self.decode_s = 0.0

    async def expect(self, phrases: Sequence[str] | None) -> None:
        phrases = list(phrases) if phrases else None
        if self._ready and phrases == self._phrases:
            return
        await self._decoder.reset(self._model.grammar(phrases) if phrases else None)
        self._ready = True
        self._phrases, self._buffer, self._partial, self._quiet_ms = phrases, b"", "", 0.0

    async def accept(self, pcm: bytes) -> Hypothesis | None:
        if not self._ready:
            await self.expect(None)
        self._buffer += pcm
        self._quiet_ms = 0.0 if self._quiet.feed(pcm) else self._quiet_ms + duration_ms(pcm)
        if len(self._buffer) < BATCH_BYTES:
            return None
        batch, self._buffer = self._buffer, b""
        final, result, seconds = await self._decoder.decode(batch)
        self.decode_s += seconds
        self.audio_s += duration_ms(batch) / 1000
        if not final and self._partial and self._quiet_ms >= self._backstop_ms:
            final, result = True, await self._decoder.flush(b"")
        if final:
            self._partial, self._quiet_ms = "", 0.0
            return self._final_hypothesis(result)
        text = json.loads(result).get("partial", "")
        if text != self._partial:
            self._partial = text
            return self._hypothesis(text, final=False)
        return None

    async def finish(self) -> Hypothesis:
        if not self._ready:
            return Hypothesis("", final=True)
        batch, self._buffer = self._buffer, b""
        return self._final_hypothesis(await self._decoder.flush(batch))

    def close(self) -> None:
        self._decoder.close()
        self._ready = False

    def _final_hypothesis(self, result: str) -> Hypothesis:
        """A final result: n-best alternatives (best first) when the decoder gives them."""
        parsed = json.loads(result)
        alternatives = tuple({"text": _known_words(a.get("text", "")),
                              "score": round(float(a.get("confidence", 0.0)), 2)}
                             for a in parsed.get("alternatives", []))
        best = alternatives[0]["text"] if alternatives else parsed.get("text", "")
        hyp = self._hypothesis(best, final=True)
        return Hypothesis(hyp.text, True, hyp.raw, alternatives)

    def _hypothesis(self, raw: str, final: bool) -> Hypothesis:
        raw = _known_words(raw)
        text = nearest_phrase(raw, self._phrases) if self._phrases else raw
        return Hypothesis(text, final, raw)


def _known_words(text: str) -> str:
    return " ".join(w for w in text.split() if w not in UNKNOWN_WORDS)


class ScriptedRecognizer:
    """A stand-in recogniser for a locale whose model is not installed (tests, demos).

    It "hears" the next scripted utterance each time a burst of caller audio ends (a burst
    shorter than ``min_speech_ms`` is noise, as a cough is to a real recogniser), so the
    rest of the voice path (timers, barge-in, grammars, dialogue) runs exactly as with Vosk.
    """

    def __init__(self, utterances: Sequence[str], end_of_speech_ms: int = 500,
                 min_speech_ms: int = 250) -> None:
        self._utterances = list(utterances)
        self._detector = SpeechDetector(hangover_ms=end_of_speech_ms)
        self._phrases: Sequence[str] | None = None
        self._in_speech = False
        self._longest = 0.0
        self._min_speech_ms = min_speech_ms

    async def expect(self, phrases: Sequence[str] | None) -> None:
        self._phrases = list(phrases) if phrases else None

    async def accept(self, pcm: bytes) -> Hypothesis | None:
        speech_ms = self._detector.feed(pcm)
        self._longest = max(self._longest, speech_ms)
        if speech_ms and not self._in_speech:
            self._in_speech = True
            return Hypothesis("…", final=False)
        if self._in_speech and not speech_ms:
            self._in_speech = False
            if self._longest < self._min_speech_ms:
                self._longest = 0.0
                return Hypothesis("", final=True)
            self._longest = 0.0
            return self._next()
        return None

    async def finish(self) -> Hypothesis:
        return self._next() if self._in_speech else Hypothesis("", final=True)

    def close(self) -> None:
        pass

    def _next(self) -> Hypothesis:
        raw = self._utterances.pop(0) if self._utterances else ""
        text = nearest_phrase(raw, self._phrases) if self._phrases else raw
        return Hypothesis(text, final=True, raw=raw)
