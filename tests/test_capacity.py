"""Capacity and overload (issue 6): past its call limit the engine answers a new call with
the busy prompt within 2 s, on every transport, while the calls it has taken go on
untouched; draining takes no new call and lets the live ones finish. Real server, real
sockets, real dialogue model; a scripted recogniser hears the caller (as in
test_gateway.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from conftest import KNOWN, scripted_zh_services
from phones import AsteriskPhone, PlainPhone, TwilioPhone, register_asterisk_call, serving
from test_gateway import SPEECH

from ivr.calllog.recorder import CallLogSettings
from ivr.errors import IvrError
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings, measured_capacity
from ivr.server.state import AUDIOSOCKET_ADDRESS, CALL_LOG, GATEWAY
from ivr.voice.gateway import Gateway

TOKEN = "capacity-token"
BUSY = "您好，现在线路繁忙，请您稍后再拨，感谢您的来电。"


@dataclass
class Line:
    url: str
    app: object
    gateway: Gateway
    scripts: deque[list[str]]

    async def plain(self) -> PlainPhone:
        return await PlainPhone().connect(self.url.replace("http", "ws") + "/ws", TOKEN,
                                          caller=KNOWN, locale="zh")

    async def health(self) -> tuple[int, dict]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/health") as resp:
            return resp.status, await resp.json()


@pytest.fixture(scope="module")
async def line(engine, project, tmp_path_factory) -> AsyncIterator[Line]:
    """An engine that takes one call at a time."""
    scripts: deque[list[str]] = deque()
    services = scripted_zh_services(engine, project, scripts, no_input_ms=20_000,
                                    playback_grace_s=0.5)
    tmp = tmp_path_factory.mktemp("capacity")
    settings = ServerSettings(
        port=0, audiosocket_port=0, ws_token=TOKEN, max_calls=1,
        call_log=CallLogSettings(url=f"sqlite:///{tmp / 'calls.sqlite3'}", recordings=None,
                                 instance="capacity-test"))
    app = build_app(settings, services)
    async with serving(app) as url:
        yield Line(url, app, app[GATEWAY], scripts)


async def _turned_away(phone, started: float) -> float:
    """Seconds from dialling to the first audio of the busy prompt; the call then ends."""
    while not phone.audio_bytes and not phone.closed.is_set():
        await asyncio.sleep(0.01)
    heard = time.monotonic() - started
    await phone.wait_closed(15)
    assert len(phone.prompts) == 1 and phone.prompts[0].text in (BUSY, ""), phone.prompts
    return heard


@pytest.mark.fault("calls past capacity")
async def test_past_capacity_a_call_hears_busy_at_once_and_the_live_call_goes_on(
        line: Line) -> None:
    line.scripts.append(["我想查余额"])
    taken = await line.plain()
    await taken.wait_prompts(2)  # notice, greeting
    status, health = await line.health()
    assert status == 200 and (health["calls_taken"], health["max_calls"]) == (1, 1)

    # A second call on each transport: the busy prompt, at once, then the end.
    started = time.monotonic()
    plain = await line.plain()
    assert await _turned_away(plain, started) < 2.0
    assert plain.end and (plain.end["outcome"], plain.end.get("reason")) == (
        "busy", "over_capacity")
    started = time.monotonic()
    twilio = await TwilioPhone().connect(line.url.replace("http", "ws") + "/twilio",
                                         caller=KNOWN, locale="zh")
    assert await _turned_away(twilio, started) < 2.0
    call_uuid = str(uuid.uuid4())
    await register_asterisk_call(line.url, TOKEN, call_uuid, caller=KNOWN, locale="zh")
    started = time.monotonic()
    asterisk = await AsteriskPhone().connect(*line.app[AUDIOSOCKET_ADDRESS], call_uuid)
    assert await _turned_away(asterisk, started) < 2.0
    assert plain.prompts[0].text == BUSY
    assert len(plain.prompts[0].audio) > 8000 * 2  # a second of speech and more
    assert asterisk.hangup_received  # Asterisk is told to hang up after it

    # The call taken was never disturbed: it is served to the end.
    await taken.say(SPEECH)
    await taken.wait_prompts(4)
    assert taken.prompts[3].text == "请输入您的6位电话银行密码，以井号键结束。"
    await taken.dtmf("123456#")
    await taken.wait_prompts(7)
    assert taken.prompts[5].text == "您尾号1234的借记卡可用余额为12345.67元。"
    await taken.hangup()
    await taken.wait_closed(10)
    assert taken.end and taken.end["outcome"] == "self_service"

    # The line is free again: the next call is taken.
    again = await line.plain()
    await again.wait_prompts(2)
    assert again.prompts[1].text.startswith("您好，欢迎致电")
    await again.hangup()
    await again.wait_closed(10)

    recorder = line.app[CALL_LOG]
    assert recorder.flush()
    busy = [c for c in recorder.store.list_calls() if c["outcome"] == "busy"]
    assert len(busy) == 3 and {c["reason"] for c in busy} == {"over_capacity"}
    assert {c["transport"] for c in busy} == {"websocket", "twilio", "audiosocket"}
    assert all(c["status"] == "complete" for c in busy)
    metrics = line.gateway.metrics.registry
    assert metrics.get_sample_value("ivr_calls_turned_away_total",
                                    {"reason": "over_capacity"}) == 3
    assert metrics.get_sample_value("ivr_capacity_calls") == 1
    assert metrics.get_sample_value("ivr_draining") == 0


@pytest.mark.fault("SIGTERM: drain")
async def test_draining_takes_no_new_call_and_waits_for_the_live_one(line: Line) -> None:
    line.scripts.append(["我想查余额"])
    live = await line.plain()
    await live.wait_prompts(2)
    drain = asyncio.create_task(line.gateway.drain(timeout_s=60))
    try:
        await asyncio.sleep(0.2)
        status, health = await line.health()
        assert (status, health["status"]) == (503, "draining")  # the balancer looks elsewhere
        assert line.gateway.metrics.registry.get_sample_value("ivr_draining") == 1
        late = await line.plain()
        assert await _turned_away(late, time.monotonic()) < 2.0
        assert late.end and late.end.get("reason") == "draining"
        assert not drain.done()  # the live call is still being served
        await live.say(SPEECH)
        await live.wait_prompts(4)
        await live.hangup()
        await live.wait_closed(10)
        assert await asyncio.wait_for(drain, 10) == 0
    finally:
        drain.cancel()
        line.gateway.draining = False  # the module's line serves the other tests


async def test_a_drain_that_times_out_says_how_many_calls_are_left(line: Line) -> None:
    live = await line.plain()
    await live.wait_prompts(2)
    try:
        assert await line.gateway.drain(timeout_s=0.3) == 1
    finally:
        line.gateway.draining = False
        await live.hangup()
        await live.wait_closed(10)


def test_the_measured_capacity_is_read_from_var(tmp_path: Path) -> None:
    assert measured_capacity(tmp_path) is None  # never measured: no limit
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "capacity.json").write_text(json.dumps({"calls": 7}))
    assert measured_capacity(tmp_path) == 7
    (tmp_path / "var" / "capacity.json").write_text("{broken")
    with pytest.raises(IvrError, match="not a capacity measurement"):
        measured_capacity(tmp_path)
