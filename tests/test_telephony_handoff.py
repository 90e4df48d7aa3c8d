"""Escalated calls reach a person on every documented path (issue 16 item 4).

The telephony asks the engine what to do once its part of a call is over: Twilio through
its ``<Connect action>`` webhook (TwiML back), Asterisk's dialplan through
``GET /audiosocket/result`` after ``AudioSocket()`` returns (``key=value&...`` that
``CURLOPT(hashcompat)`` and ``HASH()`` read). Real server, real sockets, real dialogue
model; callers are heard through the scripted recogniser as in test_gateway.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from call_reports import report
from conftest import KNOWN, scripted_zh_services
from phones import AsteriskPhone, TwilioPhone, register_asterisk_call, serving
from test_gateway import SPEECH, TOKEN, TWILIO_TOKEN, Server

from ivr.core.events import CallEnded, CallStarted, HungUp, TurnTaken
from ivr.core.report import CallReport
from ivr.errors import IvrError
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import AUDIOSOCKET_ADDRESS, CALL_LOG, GATEWAY
from ivr.telephony.transfer import (
    NextStep,
    QueueTargets,
    Target,
    next_step,
    route_twiml,
    summarize_events,
    summarize_result,
)
from ivr.telephony.twilio import twilio_signature

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

PUBLIC = "wss://ivr.bank.example"  # IVR_PUBLIC_URL: the engine behind a TLS proxy
WORKFLOW = "WW" + "0123456789abcdef" * 2
NUMBERS = (f"complaints={WORKFLOW},general=+862150000000,"
           "cards.ko=sip:cards-ko@pbx.bank.example,*=queue:ivr-other")
DOC = Path(__file__).resolve().parent.parent / "docs" / "telephony.md"


def signed(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> dict[str, str]:
    """``X-Twilio-Signature`` as Twilio computes it: HMAC-SHA1 over the URL and the sorted
    parameters, base64 (written out here, not the engine's function)."""
    payload = url + "".join(k + v for k, v in sorted(params.items()))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return {"X-Twilio-Signature": base64.b64encode(digest).decode()}


def hashcompat(body: str) -> dict[str, str]:
    """What Asterisk's ``CURLOPT(hashcompat)=yes`` makes of a body for ``HASH(ivr,key)``:
    split at ``&`` then ``=``, each part URI-decoded (func_curl.c)."""
    fields = {}
    for piece in body.strip().split("&"):
        name, _, value = piece.partition("=")
        fields[unquote(name)] = unquote(value)
    return fields


def dialplan(fields: dict[str, str]) -> str:
    """docs/telephony.md's dialplan after ``AudioSocket()``: hang up only on
    ``action=hangup``; anything else (no answer, an error) queues, ``general`` by default."""
    if fields.get("action") == "hangup":
        return "Hangup()"
    queue = fields.get("queue") or "general"
    locale = fields.get("locale") or "zh"
    return f"Queue(ivr-{queue}-{locale}) QUEUE_PRIO={fields.get('prio') or 0}"


# --- the decisions, without a server -------------------------------------------------------
def test_twilio_signature_matches_twilios_published_vector() -> None:
    """twilio-python's own test vector (tests/unit/test_request_validator.py)."""
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212", "Caller": "+14158675309"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signed(url, params, "12345")["X-Twilio-Signature"] == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_queue_targets_cover_every_queue_or_refuse_to_start() -> None:
    targets = QueueTargets.parse(NUMBERS)
    assert targets.target("complaints", "zh") == Target("workflow", WORKFLOW)
    assert targets.target("general", "ko") == Target("number", "+862150000000")
    assert targets.target("cards", "ko") == Target("sip", "sip:cards-ko@pbx.bank.example")
    assert targets.target("cards", "zh") == Target("queue", "ivr-other")  # the * entry
    # Unset: each queue's own Twilio queue, per locale (Korean callers to Korean agents).
    assert QueueTargets.parse(None).target("fraud", "ko") == Target("queue", "ivr-fraud-ko")
    assert QueueTargets.parse(" ").targets == {}
    with pytest.raises(IvrError, match="no target for cards, fraud"):
        QueueTargets.parse("general=+862150000000,loans=+862150000001,wealth=+862150000002,"
                           "private_banking=+862150000003,complaints=+862150000004")
    for bad in ("mortgages=+862150000000", "general", "general.KO=+862150000000",
                "*=12345", "*=sip:a b", "*=queue:../x", "*=WW123", "*=http://x"):
        with pytest.raises(IvrError, match="IVR_QUEUE_NUMBERS"):
            QueueTargets.parse(bad)


def result(outcome: str, turns: list[dict], **extra: Any) -> CallReport:
    return report(outcome, turns=turns, **extra)


SAID = {"input": {"say": "我想查余额"}}
HUNG_UP = {"input": {"hangup": True}}


@pytest.mark.parametrize(("call", "expected"), [
    # Escalated: the engine's queue, priority and skills.
    (result("escalated", [SAID], queue="fraud", reason="intent", priority="urgent",
            skills=["zh", "cmn"]), ("queue", "fraud", "10")),
    # The engine ended it (served, or goodbye): hang up.
    (result("self_service", [SAID]), ("hangup", "", "0")),
    (result("hangup", [SAID]), ("hangup", "", "0")),
    (result("busy", [], reason="over_capacity"), ("hangup", "", "0")),
    # The line went down on the engine's side, the caller still there: a person.
    (result("self_service", [SAID, HUNG_UP]), ("queue", "general", "0")),
    (result("hangup", []), ("queue", "general", "0")),  # cut off in the language menu
    # An escalation to no queue this engine knows, or no result at all: a person.
    (result("escalated", [SAID], queue="../x"), ("queue", "general", "0")),
    (None, ("queue", "general", "0")),
])
def test_the_next_step_hangs_up_only_on_a_call_the_engine_finished(
        call: CallReport | None, expected: tuple[str, str, str]) -> None:
    step = next_step(summarize_result(call) if call else None, "zh")
    fields = step.fields()
    assert (fields["action"], fields["queue"], fields["prio"]) == expected
    if call is None:
        assert (step.outcome, step.reason) == ("unknown", "no_result")


def test_a_logged_call_is_summarized_as_the_engine_summarizes_its_own() -> None:
    """Another instance's call: its summary from the call log's events, the same."""
    cid = "c" * 32
    start = CallStarted(call_id=cid, transport="twilio", locale="zh")
    said = TurnTaken(call_id=cid, n=1, input=SAID["input"])
    escalated = {"queue": "fraud", "reason": "intent", "priority": "urgent",
                 "skills": ["zh", "cmn"]}
    assert summarize_events(cid, [start, said]) is None  # not ended yet
    assert summarize_events(cid, [start, said, CallEnded(
        call_id=cid, locale="zh", outcome="escalated", **escalated)]) == summarize_result(
        result("escalated", [SAID], **escalated))
    served = CallEnded(call_id=cid, locale="zh", outcome="self_service")
    for events, action in (([start, said, served], "hangup"),
                           ([start, said, HungUp(call_id=cid), served], "queue"),  # cut off
                           ([start, served], "queue")):  # in the language menu
        assert next_step(summarize_events(cid, events), "zh").action == action


def test_twiml_for_each_kind_of_target() -> None:
    targets = QueueTargets.parse(NUMBERS)
    escalated = NextStep("queue", "complaints", "zh", "escalated", "intent", "high",
                         ("zh", "cmn"), "c" * 32)
    enqueue = route_twiml(escalated, targets).find("Enqueue")
    assert enqueue is not None and enqueue.get("workflowSid") == WORKFLOW
    task = enqueue.find("Task")
    assert task is not None and task.get("priority") == "5"
    assert json.loads(task.text or "") == {
        "queue": "complaints", "locale": "zh", "skills": ["zh", "cmn"], "priority": "high",
        "reason": "intent", "call_id": "c" * 32}
    general = route_twiml(NextStep("queue", "general", "zh", "unknown"), targets)
    assert ET.tostring(general, encoding="unicode") == (
        "<Response><Dial><Number>+862150000000</Number></Dial></Response>")
    korean = route_twiml(NextStep("queue", "cards", "ko", "escalated"), targets)
    assert ET.tostring(korean, encoding="unicode") == (
        "<Response><Dial><Sip>sip:cards-ko@pbx.bank.example</Sip></Dial></Response>")
    other = route_twiml(NextStep("queue", "loans", "zh", "escalated"), targets)
    assert ET.tostring(other, encoding="unicode") == (
        "<Response><Enqueue>ivr-other</Enqueue></Response>")
    done = route_twiml(NextStep("hangup", None, "zh", "self_service"), targets)
    assert ET.tostring(done, encoding="unicode") == "<Response><Hangup /></Response>"


def test_the_documented_dialplan_reads_only_fields_the_engine_sends() -> None:
    doc = DOC.read_text(encoding="utf-8")
    used = set(re.findall(r"HASH\(ivr,(\w+)\)", doc))
    step = NextStep("queue", "general", "zh", "unknown")
    assert {"action", "queue", "locale", "prio"} <= used <= set(step.fields())
    assert "/audiosocket/result?uuid=${UUID}" in doc and "CURLOPT(hashcompat)=yes" in doc
    assert "Content-Type: application/json" in doc  # the registration is JSON-only
    assert "/twilio/voice" in doc and "/twilio/after-stream" in doc


def test_an_engine_with_a_bad_queue_target_does_not_start() -> None:
    with pytest.raises(IvrError, match="IVR_QUEUE_NUMBERS"):
        build_app(ServerSettings(port=0, audiosocket_port=-1, queue_numbers="general=555"))


# --- over HTTP, after real calls --------------------------------------------------------
@pytest.fixture(scope="module")
async def server(engine, project) -> AsyncIterator[Server]:
    scripts: deque = deque()
    services = scripted_zh_services(engine, project, scripts, no_input_ms=1500,
                                    inter_digit_ms=800, playback_grace_s=0.5)
    settings = ServerSettings(port=0, audiosocket_port=0, ws_token=TOKEN,
                              twilio_auth_token=TWILIO_TOKEN, public_url=PUBLIC,
                              queue_numbers=NUMBERS)
    app = build_app(settings, services)
    async with serving(app) as url:
        yield Server(url, app[GATEWAY], app[AUDIOSOCKET_ADDRESS], scripts, app[CALL_LOG])


async def twilio_post(server: Server, path: str, params: dict[str, str],
                      headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST a form as Twilio does, signed for the public URL Twilio dialled."""
    public = PUBLIC.replace("wss://", "https://") + path
    async with aiohttp.ClientSession() as http:
        resp = await http.post(server.url + path, data=params,
                               headers=headers if headers is not None else signed(public,
                                                                                  params))
        return resp.status, await resp.text()


async def twilio_call(server: Server, *heard: str) -> TwilioPhone:
    """A Twilio call that connects as the TwiML of /twilio/voice says."""
    server.scripts.clear()
    server.hears(*heard)
    url = f"{server.ws_url}/twilio"
    return await TwilioPhone().connect(url, caller=KNOWN, locale="zh",
                                       headers=signed(f"{PUBLIC}/twilio", {}))


def twiml(body: str) -> ET.Element:
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>'), body
    return ET.fromstring(body)


async def test_the_voice_webhook_connects_the_stream_and_comes_back(server: Server) -> None:
    params = {"CallSid": "CA" + "1" * 32, "From": KNOWN, "To": "+862195555",
              "CallStatus": "ringing"}
    status, body = await twilio_post(server, "/twilio/voice?locale=zh", params)
    assert status == 200, body
    connect = twiml(body).find("Connect")
    assert connect is not None
    assert connect.get("action") == "https://ivr.bank.example/twilio/after-stream"
    stream = connect.find("Stream")
    assert stream is not None and stream.get("url") == "wss://ivr.bank.example/twilio"
    assert {p.get("name"): p.get("value") for p in stream.iter("Parameter")} == {
        "caller": KNOWN, "locale": "zh"}
    # A caller that is no number (a client, a SIP URI, markup) is passed on as nobody.
    for caller in ("client:alice", '"/><Hangup/>', "+86" + "1" * 40):
        status, body = await twilio_post(server, "/twilio/voice", {**params, "From": caller})
        stream = twiml(body).find("Connect/Stream")
        assert stream is not None and len(stream) == 1  # no locale: the language menu
        assert stream[0].attrib == {"name": "caller", "value": ""}
    status, body = await twilio_post(server, "/twilio/voice?locale=xx", params)
    assert "locale" not in body and status == 200


async def test_twilios_webhooks_refuse_what_twilio_did_not_sign(server: Server) -> None:
    params = {"CallSid": "CA" + "1" * 32, "From": KNOWN}
    for path in ("/twilio/voice", "/twilio/after-stream"):
        public = "https://ivr.bank.example" + path
        for headers in ({}, signed(public, params, "another-token"),
                        signed(public, {**params, "From": "+8613800000002"}),  # altered
                        signed(f"http://127.0.0.1{path}", params)):  # not the public URL
            status, _ = await twilio_post(server, path, params, headers)
            assert status == 403, (path, headers)
        async with aiohttp.ClientSession() as http:
            # Signed, but JSON: not what Twilio sends.
            resp = await http.post(server.url + path, json=params,
                                   headers=signed(public, {}))
            assert resp.status == 415
            # A page on another site (a form POST needs no preflight): refused first.
            resp = await http.post(server.url + path, data=params,
                                   headers={**signed(public, params),
                                            "Origin": "https://evil.example"})
            assert resp.status == 403


async def test_an_escalated_twilio_call_is_enqueued_to_its_queue(server: Server) -> None:
    phone = await twilio_call(server, "我要投诉")
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    result = await server.wait_result(phone)
    assert (result["outcome"], result["queue"]) == ("escalated", "complaints")
    params = {"CallSid": phone.call_sid, "CallStatus": "in-progress", "From": KNOWN}
    status, body = await twilio_post(server, "/twilio/after-stream", params)
    assert status == 200, body
    enqueue = twiml(body).find("Enqueue")
    assert enqueue is not None and enqueue.get("workflowSid") == WORKFLOW
    task = enqueue.find("Task")
    assert task is not None
    attributes = json.loads(task.text or "")
    assert (attributes["queue"], attributes["call_id"]) == ("complaints", result["call_id"])
    assert attributes["skills"] == result["skills"] and attributes["reason"] == "intent"
    # Another instance (or this one after a restart) answers from the call log alone.
    server.gateway.results.clear()
    assert await twilio_post(server, "/twilio/after-stream", params) == (status, body)


async def test_a_call_the_engine_finished_is_hung_up(server: Server) -> None:
    phone = await twilio_call(server, "网点几点开门", "不用了")
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    await phone.wait_prompts(3)  # the answer, then (marks acknowledged) listening again
    await asyncio.sleep(1.0)
    await phone.say(SPEECH)
    result = await server.wait_result(phone)
    assert result["outcome"] in ("self_service", "hangup") and "queue" not in result
    assert result["turns"][-1]["prompts"][-1] == "感谢您的来电，再见。"
    params = {"CallSid": phone.call_sid, "CallStatus": "in-progress"}
    status, body = await twilio_post(server, "/twilio/after-stream", params)
    assert (status, twiml(body).find("Hangup") is not None) == (200, True), body
    server.gateway.results.clear()  # the same from the call log
    assert (await twilio_post(server, "/twilio/after-stream", params))[1] == body


async def test_a_stream_cut_off_mid_call_or_unknown_goes_to_a_person(server: Server) -> None:
    phone = await twilio_call(server, "我想查余额")
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    await phone.wait_prompts(4)  # asked for the PIN
    await phone.hangup()  # the stream stops: the call may still be up (a network cut)
    result = await server.wait_result(phone)
    assert result["outcome"] == "hangup"
    general = "<Dial><Number>+862150000000</Number></Dial>"
    for sid in (phone.call_sid, "CA" + uuid.uuid4().hex, "../../etc/passwd", ""):
        status, body = await twilio_post(server, "/twilio/after-stream",
                                         {"CallSid": sid, "CallStatus": "in-progress"})
        assert status == 200 and general in body, (sid, body)
    # The caller hung up: Twilio says so, and there is nobody to put through.
    status, body = await twilio_post(server, "/twilio/after-stream",
                                     {"CallSid": phone.call_sid, "CallStatus": "completed"})
    assert twiml(body).find("Hangup") is not None


async def test_the_dialplan_reads_an_escalated_asterisk_calls_queue(server: Server) -> None:
    call_uuid = str(uuid.uuid4())
    await register_asterisk_call(server.url, TOKEN, call_uuid, KNOWN, "zh")
    server.scripts.clear()
    server.hears("我要投诉")
    phone = await AsteriskPhone().connect(*server.audiosocket, call_uuid=call_uuid)
    render = server.gateway.services.prompts.render
    notice = await render("为了提高服务质量，您的通话可能会被录音。", "cmn", "zh")
    for _ in range(600):  # the notice is heard out, a second of the greeting: barge in
        if phone.audio_bytes >= len(notice) + 16000:
            break
        await asyncio.sleep(0.05)
    await phone.say(SPEECH)
    await phone.wait_closed(60)
    assert phone.hangup_received  # AudioSocket() returns: the dialplan goes on
    result = server.result(call_uuid)
    url = f"{server.url}/audiosocket/result?uuid={call_uuid.upper()}"  # any UUID spelling
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        resp = await http.get(url, headers=bearer)
        assert resp.status == 200 and resp.content_type == "text/plain"
        fields = hashcompat(await resp.text())
        assert fields["action"] == "queue" and fields["queue"] == "complaints"
        assert (fields["locale"], fields["outcome"], fields["reason"], fields["call_id"]) == (
            "zh", "escalated", "intent", result["call_id"])
        assert fields["skills"].split() == result["skills"]
        assert dialplan(fields) == f"Queue(ivr-complaints-zh) QUEUE_PRIO={fields['prio']}"
        server.gateway.results.clear()  # from the call log alone: the same answer
        assert hashcompat(await (await http.get(url, headers=bearer)).text()) == fields
        # Unknown call: a person. Refusals keep the dialplan's form and name no action,
        # so a misconfigured dialplan queues the caller too.
        unknown = hashcompat(await (await http.get(
            f"{server.url}/audiosocket/result?uuid={uuid.uuid4()}", headers=bearer)).text())
        assert (unknown["action"], unknown["reason"]) == ("queue", "no_result")
        assert dialplan(unknown) == "Queue(ivr-general-zh) QUEUE_PRIO=0"
        for query, headers, status in ((f"uuid={call_uuid}", {}, 401),
                                       ("uuid=../../etc/passwd", bearer, 400),
                                       ("", bearer, 400)):
            resp = await http.get(f"{server.url}/audiosocket/result?{query}", headers=headers)
            refused = hashcompat(await resp.text())
            assert resp.status == status and "action" not in refused and refused["error"]
            assert dialplan(refused) == "Queue(ivr-general-zh) QUEUE_PRIO=0"

