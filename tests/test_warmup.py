"""No cold first call (issue 17): the server warms each locale's dialogue, its fixed prompts
and a decoder per worker before it starts, so it listens, and /health answers, only once
warm; the warm-up leaves nothing behind (no conversation, no bank call); a failure while
warming is reported, and the server serves anyway. Real Korean dialogue model; a TTS and
recognisers that note what they were asked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ivr.calllog.recorder import CallLogSettings
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings, asr_workers
from ivr.voice.asr import ScriptedRecognizer
from ivr.voice.session import VoiceServices
from ivr.voice.tts import PromptAudio, TtsError
from ivr.voice.voice_locale import load_voice_locales
from ivr.voice.warmup import fixed_prompts, warm_up

KO_GREETING = "안녕하십니까, 고객센터입니다."  # the start of utter_greet's Korean variation
ZH_GREETING = "您好，欢迎致电本行客服热线。"


class GatedTts:
    """Notes each text it speaks; speaks only once ``open`` is set (or fails)."""

    def __init__(self, fail: bool = False) -> None:
        self.spoken: list[tuple[str, str]] = []
        self.open = asyncio.Event()
        self.fail = fail

    async def synthesize(self, text: str, voice: str) -> bytes:
        await self.open.wait()
        if self.fail:
            raise TtsError("espeak-ng is not installed")
        self.spoken.append((voice, text))
        return b"\0" * 320


class Recognizers:
    """Hands out recognisers, counting those opened and closed."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    def __call__(self, locale: str) -> ScriptedRecognizer:
        self.opened += 1
        parent = self

        class Counted(ScriptedRecognizer):
            def close(self) -> None:
                parent.closed += 1

        return Counted([])


def _services(engine: Any, project: Any, tts: GatedTts, recognizers: Recognizers
              ) -> VoiceServices:
    locales = load_voice_locales(project.root / "locales")
    return VoiceServices(engines={"ko": engine}, locales={"ko": locales["ko"]},
                         prompts=PromptAudio(tts), recognizer_for=recognizers,
                         default_locale="ko")


def _settings(tmp_path: Path) -> ServerSettings:
    return ServerSettings(port=0, audiosocket_port=-1, ws_token="warm-token",
                          call_log=CallLogSettings(url=f"sqlite:///{tmp_path / 'calls.sqlite3'}",
                                                   recordings=None, instance="warm-test"))


def _conversations(engine: Any) -> list[str]:
    store = engine._agent.tracker_store
    while hasattr(store, "_tracker_store"):
        store = store._tracker_store
    return list(store.store)


async def test_the_server_listens_and_health_answers_only_once_warm(
        ko_engine: Any, project: Any, bank: Any, tmp_path: Path) -> None:
    tts, recognizers = GatedTts(), Recognizers()
    services = _services(ko_engine, project, tts, recognizers)
    bank_calls = len(bank.threads)
    runner = web.AppRunner(build_app(_settings(tmp_path), services, warm=True))
    starting = asyncio.create_task(runner.setup())
    try:
        await asyncio.sleep(1.0)
        assert not starting.done()  # still warming: the prompts cannot be spoken yet
        tts.open.set()
        await asyncio.wait_for(starting, 60)
        decoders = (recognizers.opened, recognizers.closed)  # /health makes one to ask
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/health") as resp:
            assert resp.status == 200
            warmed = (await resp.json())["warm_up"]
    finally:
        await runner.cleanup()
    texts = [text for _, text in tts.spoken]
    expected = {text for _, text, _ in fixed_prompts(services)}
    assert warmed["failed"] == [] and warmed["dialogues"] == 1
    assert warmed["prompts"] == len(expected) == len(set(texts)) and set(texts) == expected
    # Korean calls get the Korean variation of a response, in the Korean voice, only.
    assert any(t.startswith(KO_GREETING) for t in texts)
    assert not any(t.startswith(ZH_GREETING) for t in texts)
    assert {voice for voice, _ in tts.spoken} == {services.locales["ko"].tts_voice}
    assert services.locales["ko"].busy_prompt in texts
    assert not any("{" in t for t in texts)  # a prompt with a slot differs on each call
    # A decoder per worker, each closed again; the conversation forgotten; no bank call.
    assert decoders == (asr_workers(), asr_workers()) and warmed["decoders"] == asr_workers()
    assert not [c for c in _conversations(ko_engine) if c.startswith("warm-up-")]
    assert len(bank.threads) == bank_calls


async def test_lent_services_are_not_warmed_by_default(
        ko_engine: Any, project: Any, tmp_path: Path) -> None:
    """Tests lend the app loaded models: they start at once, as before."""
    tts, recognizers = GatedTts(), Recognizers()
    runner = web.AppRunner(build_app(_settings(tmp_path),
                                     _services(ko_engine, project, tts, recognizers)))
    await asyncio.wait_for(runner.setup(), 30)  # the TTS is closed: warming would hang
    await runner.cleanup()
    assert tts.spoken == [] and recognizers.opened == 0


async def test_a_failure_while_warming_is_reported_and_the_rest_is_warmed(
        ko_engine: Any, project: Any) -> None:
    tts, recognizers = GatedTts(fail=True), Recognizers()
    tts.open.set()
    services = _services(ko_engine, project, tts, recognizers)
    warmed = await warm_up(services, decoder_workers=2)
    assert warmed["prompts"] == 0
    assert "prompt:ko:busy" in warmed["failed"]
    assert not [f for f in warmed["failed"] if not f.startswith("prompt:")]
    assert (warmed["dialogues"], warmed["decoders"]) == (1, 2)


@pytest.mark.parametrize("locale,first", [("ko", KO_GREETING), ("zh", ZH_GREETING)])
async def test_each_locale_warms_the_variation_its_calls_get(
        locale: str, first: str, ko_engine: Any, project: Any) -> None:
    """The greeting's Korean variation is conditioned on the locale slot; Mandarin calls
    get the unconditioned one (one domain, both models)."""
    locales = load_voice_locales(project.root / "locales")
    services = VoiceServices(engines={locale: ko_engine}, locales={locale: locales[locale]},
                             prompts=PromptAudio(GatedTts()), recognizer_for=Recognizers(),
                             default_locale=locale)
    greetings = [t for _, t, name in fixed_prompts(services) if name == "utter_greet"]
    assert len(greetings) == 1 and greetings[0].startswith(first)
