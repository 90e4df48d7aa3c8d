"""The call log's database goes down mid-call (issue 6's fault campaign): the call goes on,
/health turns red, and once the database is back every event is there, in order, with one
end record: nothing lost, nothing corrupt. Real server, real PostgreSQL, real dialogue
model; a scripted recogniser hears the caller."""

from __future__ import annotations

import asyncio

import aiohttp
import sqlalchemy as sa
from conftest import KNOWN, POSTGRES
from phones import PlainPhone, serving
from sqlalchemy.engine import make_url
from test_gateway import SPEECH

from ivr.calllog.recorder import CallLogSettings
from ivr.server import CALL_LOG, ServerSettings, build_app
from ivr.voice.asr import ScriptedRecognizer
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

TOKEN = "faults-token"


def _database(url: str, up: bool) -> None:
    """Let connections to the test database in, or shut it: refuse new ones and cut the
    open ones (what a database restart or a failover looks like to its clients)."""
    name = make_url(url).database
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as db:
        db.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(up).lower()}'))
        if not up:
            db.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = :name"), {"name": name})
    admin.dispose()


async def test_the_call_goes_on_while_the_log_database_is_down_and_nothing_is_lost(
        engine, project, postgres_log: str, tmp_path) -> None:
    locales = load_voice_locales(project.root / "locales")
    services = VoiceServices(
        engines={"zh": engine}, locales={"zh": locales["zh"]},
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda locale: ScriptedRecognizer(["我想查余额"], end_of_speech_ms=300),
        default_locale="zh", settings=VoiceSettings(no_input_ms=20_000, playback_grace_s=0.5))
    settings = ServerSettings(
        port=0, audiosocket_port=-1, ws_token=TOKEN,
        call_log=CallLogSettings(url=postgres_log, recordings=tmp_path / "rec",
                                 instance="faults-test"))
    app = build_app(settings, services)
    try:
        async with serving(app) as url, aiohttp.ClientSession() as http:
            async def health() -> dict:
                async with http.get(f"{url}/health") as resp:
                    return await resp.json()

            recorder = app[CALL_LOG]
            phone = await PlainPhone().connect(url.replace("http", "ws") + "/ws", TOKEN,
                                               caller=KNOWN, locale="zh")
            await phone.wait_prompts(2)
            assert recorder.flush() and (await health())["status"] == "ok"

            _database(postgres_log, up=False)
            await phone.say(SPEECH)  # the caller is served while nothing can be written
            await phone.wait_prompts(4)
            await phone.dtmf("123456#")
            await phone.wait_prompts(7)
            assert phone.prompts[5].text == "您尾号1234的借记卡可用余额为12345.67元。"
            for _ in range(100):
                if (await health())["status"] == "degraded":
                    break
                await asyncio.sleep(0.1)
            shown = await health()
            assert shown["status"] == "degraded" and shown["call_log"]["pending"] > 0, shown

            _database(postgres_log, up=True)
            await phone.hangup()
            await phone.wait_closed(20)
            assert phone.end and phone.end["outcome"] == "self_service"
            assert await asyncio.to_thread(recorder.flush, 30)
            assert (await health())["status"] == "ok"
            events = recorder.store.events(recorder.store.list_calls()[0]["call_id"])
    finally:
        _database(postgres_log, up=True)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # every event, in order, no gap
    kinds = [e["kind"] for e in events]
    assert kinds.count("end") == 1 and kinds[-1] == "end"
    assert kinds.count("turn") == 2 and "hangup" in kinds  # written after the outage
    said = [e["data"]["text"] for e in events if e["kind"] == "prompt"]
    assert said == [p.text for p in phone.prompts]
