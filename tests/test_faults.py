"""The call log's store fails mid-call (issue 6's fault campaign): its PostgreSQL database
goes down, or the disk under its SQLite file fills up. The call goes on, /health turns
red, and once the store is back every event is there, in order, with one end record:
nothing lost, nothing corrupt. Real server, real database, real dialogue model; a scripted
recogniser hears the caller."""

from __future__ import annotations

import asyncio
import sqlite3
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from conftest import KNOWN, POSTGRES, fill
from phones import PlainPhone, serving, silence
from sqlalchemy.engine import make_url
from test_gateway import SPEECH

from ivr.calllog.recorder import CallLogSettings
from ivr.core.events import (
    CallEnded,
    CallEvent,
    HungUp,
    KeyPressed,
    PromptPlayed,
    RecordingStarted,
    TurnTaken,
)
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import CALL_LOG
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


class LogCall:
    """One call on a real server whose call log breaks while the caller is being served."""

    def __init__(self, engine: Any, project: Any, url: str, recordings: Path) -> None:
        locales = load_voice_locales(project.root / "locales")
        services = VoiceServices(
            engines={"zh": engine}, locales={"zh": locales["zh"]},
            prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
            recognizer_for=lambda locale: ScriptedRecognizer(["我想查余额"], end_of_speech_ms=300),
            default_locale="zh",
            settings=VoiceSettings(no_input_ms=20_000, playback_grace_s=0.5))
        settings = ServerSettings(
            port=0, audiosocket_port=-1, ws_token=TOKEN,
            call_log=CallLogSettings(url=url, recordings=recordings, instance="faults-test"))
        self.app = build_app(settings, services)
        self.health_while_broken: dict[str, Any] = {}

    async def run(self, break_log: Callable[[], None], mend_log: Callable[[], None]
                  ) -> tuple[PlainPhone, list[CallEvent]]:
        """The caller checks their balance while the log is broken, then hangs up once it
        is mended; what the caller heard, and the call's events as logged."""
        async with serving(self.app) as url, aiohttp.ClientSession() as http:
            async def health() -> dict:
                async with http.get(f"{url}/health") as resp:
                    return await resp.json()

            recorder = self.app[CALL_LOG]
            phone = await PlainPhone().connect(url.replace("http", "ws") + "/ws", TOKEN,
                                               caller=KNOWN, locale="zh")
            await phone.wait_prompts(2)
            await phone.send_audio(silence(1000))  # the line is open: the recording starts
            await asyncio.sleep(0.5)
            assert recorder.flush() and (await health())["status"] == "ok"

            break_log()
            await phone.say(SPEECH)  # the caller is served while nothing can be written
            await phone.wait_prompts(4)
            await phone.dtmf("123456#")
            await phone.wait_prompts(7)
            assert phone.prompts[5].text == "您尾号1234的借记卡可用余额为12345.67元。"
            for _ in range(100):
                if (await health())["status"] == "degraded":
                    break
                await asyncio.sleep(0.1)
            self.health_while_broken = await health()

            mend_log()
            await phone.hangup()
            await phone.wait_closed(20)
            assert phone.end and phone.end["outcome"] == "self_service"
            assert await asyncio.to_thread(recorder.flush, 30)
            assert (await health())["status"] == "ok"
            events = recorder.store.events(recorder.store.list_calls()[0]["call_id"])
        return phone, events


def _nothing_lost(phone: PlainPhone, events: list[CallEvent]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # every event, in order, no gap
    types = [type(e) for e in events]
    assert types.count(CallEnded) == 1 and types[-1] is CallEnded
    assert types.count(TurnTaken) == 2 and HungUp in types  # written after the outage
    said = [e.text for e in events if isinstance(e, PromptPlayed)]
    assert said == [p.text for p in phone.prompts]


@pytest.mark.fault("call-log database down mid-call")
async def test_the_call_goes_on_while_the_log_database_is_down_and_nothing_is_lost(
        engine, project, postgres_log: str, tmp_path: Path) -> None:
    call = LogCall(engine, project, postgres_log, tmp_path / "rec")
    try:
        phone, events = await call.run(lambda: _database(postgres_log, up=False),
                                       lambda: _database(postgres_log, up=True))
    finally:
        _database(postgres_log, up=True)
    shown = call.health_while_broken
    assert shown["status"] == "degraded" and shown["call_log"]["pending"] > 0, shown
    _nothing_lost(phone, events)


@pytest.mark.fault("disk full under the SQLite call log")
async def test_the_call_goes_on_while_the_disk_is_full_and_nothing_is_lost_or_corrupt(
        engine, project, small_disk: Path) -> None:
    """The SQLite log and the recordings share the disk that fills up (var/, embedded)."""
    log_file = small_disk / "calls.sqlite3"
    call = LogCall(engine, project, f"sqlite:///{log_file}", small_disk / "rec")
    filler: list[Path] = []
    phone, events = await call.run(lambda: filler.append(fill(small_disk)),
                                   lambda: filler.pop().unlink())
    shown = call.health_while_broken
    assert shown["status"] == "degraded" and shown["call_log"]["pending"] > 0, shown
    _nothing_lost(phone, events)
    with sqlite3.connect(log_file) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # A readable WAV from the call's start: whole, when the writer was held up on the log
    # until space came back (its audio waits in memory), else cut where the disk filled.
    recording = next(e.recording for e in events if isinstance(e, RecordingStarted))
    with wave.open(str(small_disk / "rec" / recording)) as wav:
        assert wav.getnchannels() == 2 and wav.getnframes() > 0
        recorded_ms = wav.getnframes() * 1000 // wav.getframerate()
    keys_ms = max((e.at_ms or 0 for e in events if isinstance(e, KeyPressed)),
                  default=0)  # the PIN, keyed on a full disk
    if call.app[CALL_LOG].recordings_cut:
        assert recorded_ms < keys_ms, (recorded_ms, keys_ms)
    else:
        assert recorded_ms > keys_ms, (recorded_ms, keys_ms)
