"""``/metrics`` after real calls (issue 16 item 8, issue 17 item 1): Prometheus naming,
bounded labels, the call-duration and turn-stage histograms, the default process and
Python collectors, one JSON log line per call end, and a Grafana dashboard whose every
query names a series the server really exports.

The calls run over the plain WebSocket against a real server and the real dialogue model;
the caller is heard by the scripted recogniser (ends an utterance 300 ms after the sound).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from call_reports import bundle, report
from conftest import KNOWN, scripted_zh_services
from phones import PlainPhone, serving, tone
from prometheus_client.parser import text_string_to_metric_families

from ivr.core.events import (
    CallEnded,
    Failed,
    Greeted,
    KeyPressed,
    PromptPlayed,
    TranscriptFinal,
    TurnTaken,
)
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import GATEWAY
from ivr.voice.gateway import Gateway
from ivr.voice.metrics import STAGES, Metrics, log_call_end, show_call_ends

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

TOKEN = "metrics-token"
SPEECH = tone(700, hz=300)
DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Line:
    def __init__(self, url: str, gateway: Gateway, scripts: deque) -> None:
        self.url, self.gateway, self.scripts = url, gateway, scripts

    async def call(self, *utterances: str) -> PlainPhone:
        self.scripts.append(list(utterances))
        phone = await PlainPhone().connect(f"{self.url.replace('http', 'ws')}/ws", TOKEN,
                                           caller=KNOWN, locale="zh")
        await phone.wait_prompts(2)  # the recording notice, the greeting
        return phone

    async def ended(self, phone: PlainPhone) -> dict:
        await phone.wait_closed(30)
        for _ in range(100):
            if not self.gateway.live:
                return self.gateway.results[-1].as_dict()
            await asyncio.sleep(0.05)
        raise AssertionError("the call did not end")

    async def scrape(self) -> tuple[str, list]:
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"{self.url}/metrics",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status == 200
            text = await resp.text()
        return text, list(text_string_to_metric_families(text))


def samples(families: list) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
async def line(engine, project) -> AsyncIterator[Line]:
    scripts: deque = deque()
    services = scripted_zh_services(engine, project, scripts, no_input_ms=3000,
                                    inter_digit_ms=800, playback_grace_s=0.5)
    app = build_app(ServerSettings(port=0, audiosocket_port=-1, ws_token=TOKEN, max_calls=0),
                    services)
    async with serving(app) as url:
        yield Line(url, app[GATEWAY], scripts)


async def test_calls_are_counted_by_bounded_labels_with_their_duration_and_stages(
        line: Line, caplog: pytest.LogCaptureFixture) -> None:
    _, families = await line.scrape()
    before = samples(families)
    caplog.set_level(logging.INFO, logger="ivr.calls")

    began = time.monotonic()
    served = await line.call("我想查余额")  # asks for the PIN, then reads the balance
    await served.say(SPEECH)
    await served.wait_prompts(4)
    await served.dtmf("123456#")
    await served.wait_prompts(7)
    await served.hangup()
    served_result = await line.ended(served)
    took = time.monotonic() - began
    escalated = await line.call()
    await escalated.dtmf("0")  # asked what it is about first; 0 again: an agent now
    await escalated.wait_prompts(3)
    await escalated.dtmf("0")
    escalated_result = await line.ended(escalated)
    assert served_result["outcome"] == "self_service"
    assert (escalated_result["outcome"], escalated_result["queue"],
            escalated_result["reason"]) == ("escalated", "general", "caller_request")

    text, families = await line.scrape()
    after = samples(families)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    call = {"transport": "websocket", "locale": "zh"}
    assert grew("ivr_calls_total", **call, outcome="self_service", queue="none",
                reason="none") == 1
    assert grew("ivr_calls_total", **call, outcome="escalated", queue="general",
                reason="caller_request") == 1
    duration = {"transport": "websocket", "outcome": "self_service"}
    assert grew("ivr_call_duration_seconds_count", **duration) == 1
    assert 0.1 < grew("ivr_call_duration_seconds_sum", **duration) < took
    # Every stage of the spoken turn was timed; the two key turns skip the speech stages.
    for stage in STAGES:
        assert grew("ivr_turn_stage_seconds_count", stage=stage) >= 1, stage
    assert grew("ivr_turn_stage_seconds_count", stage="endpoint") == 1
    assert grew("ivr_turn_stage_seconds_count", stage="nlu") == 1
    assert grew("ivr_turn_stage_seconds_count", stage="dialogue") == 4
    # The recogniser ends an utterance 300 ms after the sound (plus a frame or two).
    assert 0.28 <= grew("ivr_turn_stage_seconds_sum", stage="endpoint") <= 0.4
    assert "123456" not in text and KNOWN not in text  # no caller input in a label

    ends = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ivr.calls"]
    assert [(e["call_id"], e["outcome"], e["queue"]) for e in ends] == [
        (served_result["call_id"], "self_service", None),
        (escalated_result["call_id"], "escalated", "general")]
    assert ends[0]["transport"] == "websocket" and ends[0]["locale"] == "zh"
    assert ends[0]["duration_s"] == pytest.approx(
        grew("ivr_call_duration_seconds_sum", **duration), abs=0.002)
    assert KNOWN not in json.dumps(ends)  # the engine's call id, never the caller's number


async def test_names_follow_prometheus_conventions_with_the_default_collectors(
        line: Line) -> None:
    _, families = await line.scrape()
    by_name = {f.name: f for f in families}
    for family in families:
        names = {s.name for s in family.samples}
        if family.type == "counter":
            assert names <= {f"{family.name}_total", f"{family.name}_created"}, family.name
        else:
            assert not any(n.endswith("_total") for n in names), family.name
    for counter in ("ivr_calls", "ivr_call_log_dropped_items", "ivr_recordings_cut",
                    "ivr_call_log_dead_letters", "ivr_errors", "ivr_calls_turned_away"):
        assert by_name[counter].type == "counter", counter
    for gauge in ("ivr_calls_active", "ivr_call_log_pending_items", "ivr_call_log_failing",
                  "ivr_draining", "ivr_capacity_calls", "ivr_audio_backlog_frames"):
        assert by_name[gauge].type == "gauge", gauge
    for histogram in ("ivr_call_duration_seconds", "ivr_turn_stage_seconds",
                      "ivr_response_seconds", "ivr_dialogue_lock_wait_seconds"):
        assert by_name[histogram].type == "histogram", histogram
    # The process and Python collectors every client exports by default.
    assert by_name["process_resident_memory_bytes"].samples[0].value > 0
    assert by_name["process_cpu_seconds"].type == "counter"
    assert by_name["python_info"].samples[0].labels["implementation"] == "CPython"
    assert "python_gc_collections" in by_name


def test_label_values_outside_their_set_count_as_other() -> None:
    metrics = Metrics(["zh", "ko"])
    assert metrics.call_labels(report("hacked", transport="sip", locale="fr", handoff=bundle(
        queue="../../etc", reason={"x": 1}))) == {
        "transport": "other", "locale": "other", "outcome": "other", "queue": "other",
        "reason": "other"}
    assert metrics.call_labels(report("hangup", transport="twilio", locale="ko")) == {
        "transport": "twilio", "locale": "ko", "outcome": "hangup", "queue": "none",
        "reason": "none"}
    # A busy call's reason is why it was turned away, not an escalation's reason.
    assert metrics.call_labels(report("busy", reason="draining"))["reason"] == "draining"
    assert metrics.call_labels(report("busy", reason="no_match"))["reason"] == "other"
    metrics.observe(Failed(call_id="c", error="a message from some library"))
    metrics.observe(Failed(call_id="c", error="asr"))
    get = metrics.registry.get_sample_value
    assert get("ivr_errors_total", {"error": "other"}) == 1
    assert get("ivr_errors_total", {"error": "asr"}) == 1
    metrics.malformed_message("carrier-pigeon")
    assert get("ivr_malformed_messages_total", {"transport": "other"}) == 1


def test_the_turn_stages_and_the_response_time_are_read_from_the_events() -> None:
    """One spoken turn and one keyed one, event by event, without a server: each stage
    observed once per turn, the answer timed from the input to its first prompt only,
    noise heard as nothing no input, and every event counted by its kind word."""
    metrics = Metrics(["zh"])
    for event in [
        Greeted(call_id="c", at=0.0, lock_wait_s=0.002),
        TranscriptFinal(call_id="c", at=1.0, text="", raw=""),  # noise: no input
        PromptPlayed(call_id="c", at=1.5, text="请讲"),  # no input before it: not timed
        TranscriptFinal(call_id="c", at=2.0, text="查余额", endpoint_s=0.3, transcript_s=0.05),
        TurnTaken(call_id="c", at=2.2, n=1, input={"say": "查余额"}, nlu_s=0.02,
                  queue_wait_s=0.01, lock_wait_s=0.003, dialogue_s=0.1),
        PromptPlayed(call_id="c", at=2.5, text="请输入密码", render_s=0.2),
        PromptPlayed(call_id="c", at=2.6, text="以井号键结束"),  # not the first: not timed
        KeyPressed(call_id="c", at=4.0, digit="*"),
        TurnTaken(call_id="c", at=4.1, n=2, input={"dtmf": "******#"}),
        PromptPlayed(call_id="c", at=4.25, text="余额为"),
        CallEnded(call_id="c", at=5.0, outcome="hangup", asr_audio_s=3.0, asr_decode_s=0.5),
    ]:
        metrics.observe(event)
    get = metrics.registry.get_sample_value
    assert get("ivr_response_seconds_count") == 2
    assert get("ivr_response_seconds_sum") == pytest.approx(0.5 + 0.25)
    for stage, seconds in (("endpoint", 0.3), ("transcript", 0.05), ("nlu", 0.02),
                           ("dialogue_queue", 0.013), ("dialogue", 0.1), ("prompt", 0.2)):
        labels = {"stage": stage}
        assert get("ivr_turn_stage_seconds_count", labels) == 1, stage
        assert get("ivr_turn_stage_seconds_sum", labels) == pytest.approx(seconds), stage
    assert get("ivr_dialogue_lock_wait_seconds_count") == 2
    assert get("ivr_dialogue_lock_wait_seconds_sum") == pytest.approx(0.005)
    assert (get("ivr_asr_audio_seconds_total"), get("ivr_asr_decode_seconds_total")) == (
        3.0, 0.5)
    counted = {kind: get("ivr_call_events_total", {"kind": kind})
               for kind in ("greeting", "speech", "prompt", "dtmf", "turn", "end")}
    assert counted == {"greeting": 1, "speech": 2, "prompt": 4, "dtmf": 1, "turn": 2,
                       "end": 1}


def test_each_metrics_has_its_own_registry() -> None:
    """Several apps in one process (the tests) each count their own calls."""
    first, second = Metrics(["zh"]), Metrics(["zh"])
    first.call_ended(report("hangup", transport="websocket", locale="zh"), 3.0)
    labels = {"transport": "websocket", "locale": "zh", "outcome": "hangup",
              "queue": "none", "reason": "none"}
    assert first.registry.get_sample_value("ivr_calls_total", labels) == 1
    assert second.registry.get_sample_value("ivr_calls_total", labels) is None
    assert second.registry.get_sample_value("process_open_fds") > 0  # each has the defaults


def test_ivr_serve_writes_each_call_end_as_one_json_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("ivr.calls")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        show_call_ends()
        show_call_ends()  # once is enough: never two lines per call
        log_call_end(report("escalated", queue="cards", reason="intent", call_id="c1",
                            transport="twilio", locale="zh", intent="password_reset",
                            turns=[{}, {}], caller=KNOWN), 42.12345)
        lines = capsys.readouterr().err.splitlines()
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert {k: line[k] for k in ("event", "call_id", "outcome", "queue", "reason", "turns",
                                 "duration_s")} == {
        "event": "call_end", "call_id": "c1", "outcome": "escalated", "queue": "cards",
        "reason": "intent", "turns": 2, "duration_s": 42.123}
    assert KNOWN not in lines[0]


async def test_the_grafana_dashboard_queries_only_exported_series(line: Line) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
              for v in dashboard["templating"]["list"] if v.get("type") == "query"]
    assert len(exprs) >= 15
    phone = await line.call()  # a call: the series labelled per call exist
    await phone.hangup()
    await line.ended(phone)
    _, families = await line.scrape()
    exported = {s.name for f in families for s in f.samples}
    named = {m for e in exprs for m in re.findall(r"\b((?:ivr|process|python)_\w+)", e)}
    assert {"ivr_calls_total", "ivr_turn_stage_seconds_bucket",
            "ivr_call_duration_seconds_bucket"} <= named
    assert named <= exported, sorted(named - exported)
    stages = {m for e in exprs for m in re.findall(r'stage="(\w+)"', e)}
    assert stages <= set(STAGES)
