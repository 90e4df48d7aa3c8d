"""The engine killed mid-call (SIGKILL: no cleanup at all) loses nothing it had logged:
after a restart every event up to the kill is readable, the call is marked incomplete and
its recording plays up to the kill. The restarted engine is then stopped the polite way
(SIGTERM) during a call: it drains. Then the engine is killed again and again under load.
On both stores."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
import wave
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from conftest import KNOWN, free_port
from phones import PlainPhone, speak

from ivr.calllog.schema import COMPLETE, INCOMPLETE
from ivr.calllog.store import CallNotFound, CallStore
from ivr.core.events import (
    CallEnded,
    CallEvent,
    CallStarted,
    Greeted,
    KeyPressed,
    PromptPlayed,
    RecordingStarted,
    TranscriptFinal,
    TranscriptPartial,
    TurnTaken,
)

TOKEN = "crash-test-token"


class Engine:
    """``ivr serve`` in its own process."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.output: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ivr.cli", "serve", "--port", str(port),
             "--audiosocket-port", "-1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("ivr serve:"):
                self.ready.set()

    async def started(self, timeout: float = 300) -> None:
        if not await asyncio.to_thread(self.ready.wait, timeout):
            self.process.kill()
            raise AssertionError("ivr serve did not start:\n" + "".join(self.output[-30:]))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def events_of(store: CallStore, external_id: str) -> list[CallEvent]:
    """The committed events of the call a phone started with ``call_id`` = ``external_id``
    (the engine names the call itself and keeps the phone's id as its external id, from
    its start event on); none before that."""
    try:
        return store.events(store.find_call(external_id, exact=True)["call_id"])
    except CallNotFound:
        return []


async def logged(store: CallStore, call_id: str,
                 until: Callable[[list[type[CallEvent]]], bool],
                 engine: Engine, within_s: float = 10) -> None:
    """Wait until the call's committed events (their types) satisfy ``until``: an event is
    durable a few ms after it happens, and a kill must not race that commit."""
    for _ in range(int(within_s / 0.05)):
        if until([type(e) for e in await asyncio.to_thread(events_of, store, call_id)]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} not logged in {within_s} s:\n"
                         + "".join(engine.output[-30:]))


@pytest.fixture
def engine_env(store_url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "IVR_CALL_LOG": store_url, "IVR_RECORDINGS": str(tmp_path / "rec"),
            "IVR_INSTANCE": "crash-test", "IVR_WS_TOKEN": TOKEN}


@pytest.mark.fault("engine SIGKILLed mid-call")
async def test_a_killed_engine_leaves_every_event_and_marks_the_call_incomplete(
        engine_env: dict[str, str], store_url: str, tmp_path: Path) -> None:
    port = free_port()
    engine = Engine(engine_env, port)
    store = CallStore(store_url)
    try:
        await engine.started()
        call_id = uuid.uuid4().hex
        phone = await PlainPhone().connect(f"ws://127.0.0.1:{port}/ws", TOKEN, caller=KNOWN,
                                           locale="ko", call_id=call_id)
        await phone.wait_prompts(2)  # notice, greeting
        await phone.say(speak("거래 내역"))
        await phone.wait_prompts(4)  # verify first, then the PIN
        await phone.dtmf("12")  # the first two keys of the PIN...
        await logged(store, call_id, lambda types: types.count(KeyPressed) == 2, engine)
        engine.kill()  # ...and the engine dies
        await phone.wait_closed(10)
    except BaseException:
        store.close()
        raise
    finally:
        if engine.process.poll() is None:
            engine.kill()
    try:
        call = store.find_call(call_id)
        before = store.events(call["call_id"])
        assert call["status"] == "live"  # nobody has looked at it yet
        types = [type(e) for e in before]
        assert types[:3] == [RecordingStarted, PromptPlayed, CallStarted]  # the notice first
        for kind in (Greeted, TranscriptPartial, TranscriptFinal, TurnTaken):
            assert kind in types, kind
        # Every prompt the caller heard, and both keys pressed before the kill, are there.
        said = [e.text for e in before if isinstance(e, PromptPlayed)]
        assert said == [p.text for p in phone.prompts]
        keys = [e.digit for e in before if isinstance(e, KeyPressed)]
        assert keys == ["*", "*"]  # and masked: they were the PIN's
        turn = next(e for e in before if isinstance(e, TurnTaken))
        assert turn.intent == "recent_transactions"

        restarted = Engine(engine_env, port)
        try:
            await restarted.started()
            await _drains_on_sigterm(restarted)
        finally:
            restarted.stop()
        call = store.find_call(call_id)
        assert call["status"] == "incomplete" and call["outcome"] is None
        assert store.events(call["call_id"]) == before  # nothing lost, nothing invented
        assert call["ended_at"] == before[-1].at
        with wave.open(str(tmp_path / "rec" / call["recording"])) as wav:
            assert wav.getnchannels() == 2
            seconds = wav.getnframes() / wav.getframerate()
        heard_until = max(e.at_ms or 0 for e in before if isinstance(e, KeyPressed))
        assert seconds >= heard_until / 1000 - 0.2  # the audio up to the keys is readable
    finally:
        store.close()


async def _drains_on_sigterm(engine: Engine) -> None:
    """SIGTERM: /health turns 503 (a load balancer stops sending calls), a new call hears
    the busy prompt, the live call is served to its end, then the process exits 0."""
    url = f"ws://127.0.0.1:{engine.port}/ws"
    live = await PlainPhone().connect(url, TOKEN, caller=KNOWN, locale="ko")
    await live.wait_prompts(2)
    engine.process.send_signal(signal.SIGTERM)
    for _ in range(100):
        if any("draining 1 live calls" in line for line in engine.output):
            break
        await asyncio.sleep(0.05)
    async with (aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{engine.port}/health") as resp):
        assert resp.status == 503 and (await resp.json())["status"] == "draining"
    late = await PlainPhone().connect(url, TOKEN, caller=KNOWN, locale="ko")
    await late.wait_closed(20)
    assert late.end and (late.end["outcome"], late.end["reason"]) == ("busy", "draining")
    assert [p.text for p in late.prompts] == ["죄송합니다. 지금은 통화량이 많아 연결이 어렵습니다. "
                                              "잠시 후 다시 걸어 주세요."]
    await live.say(speak("거래 내역"))
    await live.wait_prompts(4)  # still understood and answered while draining
    await live.hangup()
    await live.wait_closed(20)
    assert live.end and live.end["outcome"] == "hangup"
    assert await asyncio.to_thread(engine.process.wait, 30) == 0
    assert any("drained, stopping" in line for line in engine.output), engine.output[-5:]


KILLS = 3
CALLERS = 6


@pytest.mark.fault("engine SIGKILLed repeatedly under load")
async def test_killed_again_and_again_under_load_every_acknowledged_event_is_kept(
        engine_env: dict[str, str], store_url: str) -> None:
    """Six callers keep calling (speech, real models); the engine is SIGKILLed at a random
    moment, restarted, killed again. Acknowledged: an event the call log had committed
    (read back just before the kill), the call's end once the caller was told of it, and
    every prompt a caller heard to its end. (This phone reports a prompt heard as soon as
    its audio arrives, which a real one does only after playing it, seconds after the
    prompt was logged: one heard in the last 0.2 s before a kill is not counted.)"""
    seed = random.randrange(1 << 16)
    chance = random.Random(seed)
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    speech = [speak("환율"), speak("아니요")]
    phones: dict[str, PlainPhone] = {}
    committed: dict[str, list[CallEvent]] = {}  # call id -> its events read just before a kill
    kills: list[float] = []
    store = CallStore(store_url)
    try:
        for _ in range(KILLS):
            engine = Engine(engine_env, port)
            try:
                await engine.started()
                callers = [asyncio.create_task(_keep_calling(url, speech, phones))
                           for _ in range(CALLERS)]
                await asyncio.sleep(chance.uniform(10, 25))
                for call_id in list(phones):
                    committed[call_id] = await asyncio.to_thread(events_of, store, call_id)
                kills.append(time.monotonic())
                engine.kill()
                await asyncio.wait_for(asyncio.gather(*callers), 30)
            finally:
                if engine.process.poll() is None:
                    engine.kill()
        last = Engine(engine_env, port)  # marks the calls the last kill cut off
        try:
            await last.started()
        finally:
            last.stop()

        ended = 0
        for call_id, phone in phones.items():
            events = events_of(store, call_id)
            where = f"seed {seed}, call {call_id}"
            assert events[:len(committed.get(call_id, []))] == committed.get(call_id, []), where
            said = [e.text for e in events if isinstance(e, PromptPlayed)]
            heard = [p.text for p in phone.prompts  # (the next engine takes seconds to start)
                     if not any(kill - 0.2 < p.heard_at < kill + 1 for kill in kills)]
            assert said[:len(heard)] == heard, where
            if not events:
                continue  # killed before its first commit: nothing was acknowledged
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), where
            types = [type(e) for e in events]
            call = store.find_call(call_id)
            if phone.end:  # the caller heard the call end: so did the log
                ended += 1
                assert types.count(CallEnded) == 1 and types[-1] is CallEnded, where
                assert (call["status"], call["outcome"]) == (COMPLETE, phone.end["outcome"])
            else:  # cut off: marked incomplete, nothing invented
                assert types.count(CallEnded) == 0 and call["status"] == INCOMPLETE, where
        assert ended and len(phones) > ended, (seed, ended, len(phones))
    finally:
        store.close()


async def _keep_calling(url: str, speech: list[bytes], phones: dict[str, PlainPhone]) -> None:
    """Call, ask, answer, and call again, until the engine is gone."""
    while True:
        call_id = uuid.uuid4().hex
        phone = PlainPhone()
        try:
            await phone.connect(url, TOKEN, caller=KNOWN, locale="ko", call_id=call_id)
        except (aiohttp.ClientError, OSError):  # the engine is gone
            await phone._http.close()
            return
        phones[call_id] = phone
        try:
            await phone.wait_prompts(2, timeout=30)
            for pcm in speech:
                heard = len(phone.prompts)
                await phone.say(pcm, pace=0.02)
                await phone.wait_prompts(heard + 1, timeout=30)
            await phone.wait_closed(30)
        except (aiohttp.ClientError, OSError):
            pass
        if not phone.end:
            await phone.wait_closed(30)
            return
