"""Prompt audio: espeak-ng through the cache, and recordings that replace TTS."""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from pathlib import Path

import pytest

from ivr.voice.audio import SAMPLE_RATE, duration_ms
from ivr.voice.tts import EspeakTts, PromptAudio, TtsError


class CountingTts(EspeakTts):
    """espeak-ng, counting how often it is really run."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    async def synthesize(self, text: str, voice: str) -> bytes:
        self.runs += 1
        return await super().synthesize(text, voice)


async def test_espeak_speaks_telephone_audio() -> None:
    pcm = await EspeakTts().synthesize("상담원 연결", "ko")
    assert 500 < duration_ms(pcm) < 5000 and len(pcm) % 2 == 0
    assert any(pcm)  # not silence


async def test_each_prompt_is_synthesised_once_then_cached(tmp_path: Path) -> None:
    tts = CountingTts()
    prompts = PromptAudio(tts, cache_dir=tmp_path)
    first = await asyncio.gather(*(prompts.render("感谢您的来电，再见。", "cmn", "zh")
                                   for _ in range(5)))  # five calls at once: one synthesis
    assert tts.runs == 1 and all(p == first[0] for p in first)
    restarted = PromptAudio(tts, cache_dir=tmp_path)  # a new process finds it on disk
    assert await restarted.render("感谢您的来电，再见。", "cmn", "zh") == first[0]
    assert tts.runs == 1
    await prompts.render("感谢您的来电，再见。", "ko", "ko")  # another voice: another entry
    assert tts.runs == 2


async def test_a_recording_replaces_tts_for_its_response(tmp_path: Path) -> None:
    (tmp_path / "ko").mkdir()
    with wave.open(str(tmp_path / "ko" / "utter_goodbye.wav"), "wb") as w:  # 16 kHz stereo
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<hh", v, v) for v in (
            int(6000 * math.sin(i / 10)) for i in range(16000))))
    tts = CountingTts()
    prompts = PromptAudio(tts, recordings=tmp_path)
    recorded = await prompts.render("전화 주셔서 감사합니다.", "ko", "ko", "utter_goodbye")
    assert tts.runs == 0
    assert abs(duration_ms(recorded) - 1000) < 5 and len(recorded) == SAMPLE_RATE * 2
    spoken = await prompts.render("전화 주셔서 감사합니다.", "ko", "ko", "utter_greet")
    assert tts.runs == 1 and spoken != recorded  # no recording for that one


async def test_tts_failures_are_clear_errors() -> None:
    with pytest.raises(TtsError, match="not installed"):
        await EspeakTts(binary="no-such-espeak").synthesize("네", "ko")
    # espeak-ng itself would quietly speak Korean text with its English voice.
    with pytest.raises(TtsError, match="has no voice 'xx'"):
        await EspeakTts().synthesize("네", "xx")
