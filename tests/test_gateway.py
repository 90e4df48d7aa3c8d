"""The voice gateway at the socket level: real server, real sockets, real dialogue model.

Mandarin calls here hear the caller through the scripted recogniser (no Chinese Vosk model
can be installed here): each burst of caller audio is heard as the next scripted
utterance, so timers, barge-in, keys, protocols and failures are all exercised for real.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator

import aiohttp
import pytest
from conftest import KNOWN
from phones import (
    AsteriskPhone,
    PlainPhone,
    TwilioPhone,
    register_asterisk_call,
    serving,
    tone,
)
from prometheus_client.parser import text_string_to_metric_families

from ivr.calllog.recorder import CallRecorder
from ivr.core.events import TranscriptFinal
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import AUDIOSOCKET_ADDRESS, CALL_LOG, GATEWAY
from ivr.voice.asr import ScriptedRecognizer
from ivr.voice.gateway import Gateway
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

TOKEN = "test-token"
TWILIO_TOKEN = "twilio-auth-token"
SPEECH = tone(700, hz=300)  # a burst of "speech" for the scripted recogniser
COUGH = tone(120, hz=300)


class BrokenRecognizer(ScriptedRecognizer):
    """A recogniser whose engine dies as the caller starts to speak."""

    def __init__(self) -> None:
        super().__init__([])

    async def accept(self, pcm: bytes):
        if any(pcm):
            raise RuntimeError("vosk: decoder crashed")
        return None


pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

class SlowRecognizer(ScriptedRecognizer):
    """A recogniser on an overloaded machine: 20 ms of audio takes 20 ms to decode."""

    def __init__(self) -> None:
        super().__init__([])

    async def accept(self, pcm: bytes):
        await asyncio.sleep(0.02)
        return None


class Server:
    def __init__(self, url: str, gateway: Gateway, audiosocket: tuple[str, int],
                 scripts: deque, recorder: CallRecorder | None = None) -> None:
        self.url = url
        self.recorder = recorder  # the call log's writer (the test session's log)
        self.ws_url = url.replace("http", "ws")
        self.gateway = gateway
        self.audiosocket = audiosocket
        self.scripts = scripts  # what the next calls' callers will say, one list per call

    def hears(self, *utterances: str) -> None:
        self.scripts.append(list(utterances))

    async def plain(self, **kw) -> PlainPhone:
        kw.setdefault("caller", KNOWN)
        kw.setdefault("locale", "zh")
        ack = kw.pop("ack_marks", True)
        return await PlainPhone(ack_marks=ack).connect(f"{self.ws_url}/ws", TOKEN, **kw)

    def result(self, call_id: str | None = None) -> dict:
        """The last call's result, or the call's with that id or external (wire) id."""
        for report in reversed(self.gateway.results):
            if call_id is None or call_id in (report.call_id, report.external_id):
                return report.as_dict()
        raise AssertionError(f"no result for {call_id}")

    async def wait_result(self, phone, timeout: float = 30) -> dict:
        await phone.wait_closed(timeout)
        for _ in range(100):
            if self.gateway.results and not self.gateway.live:
                return self.gateway.results[-1].as_dict()
            await asyncio.sleep(0.05)
        raise AssertionError("call did not end")


@pytest.fixture(scope="module")
async def server(engine, project) -> AsyncIterator[Server]:
    scripts: deque = deque()

    def recognizer_for(locale: str) -> ScriptedRecognizer:
        script = scripts.popleft() if scripts else []
        if script in (BrokenRecognizer, SlowRecognizer):
            return script()
        return ScriptedRecognizer(script, end_of_speech_ms=300)

    locales = load_voice_locales(project.root / "locales")
    services = VoiceServices(
        engines={"zh": engine}, locales={"zh": locales["zh"]},
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=recognizer_for, default_locale="zh",
        settings=VoiceSettings(no_input_ms=1500, inter_digit_ms=800, playback_grace_s=0.5))
    settings = ServerSettings(port=0, audiosocket_port=0, ws_token=TOKEN,
                              twilio_auth_token=TWILIO_TOKEN)
    app = build_app(settings, services)
    async with serving(app) as url:
        yield Server(url, app[GATEWAY], app[AUDIOSOCKET_ADDRESS], scripts, app[CALL_LOG])


@pytest.fixture(autouse=True)
def no_leftover_scripts(server: Server) -> None:
    server.scripts.clear()


def texts(phone) -> list[str]:
    return [p.text for p in phone.prompts]


async def test_a_whole_call_on_the_plain_socket(server: Server) -> None:
    server.hears("我想查余额")
    phone = await server.plain()
    await phone.wait_prompts(2)
    assert texts(phone)[0] == "为了提高服务质量，您的通话可能会被录音。"
    assert texts(phone)[1].startswith("您好，欢迎致电")
    # The audio the caller got is exactly the prompt's speech, in telephone format.
    expected = await server.gateway.services.prompts.render(texts(phone)[1], "cmn", "zh")
    assert bytes(phone.prompts[1].audio) == expected and len(expected) > 8000 * 2
    await phone.say(SPEECH)
    await phone.wait_prompts(4)
    assert texts(phone)[3] == "请输入您的6位电话银行密码，以井号键结束。"
    await phone.dtmf("123456#")
    await phone.wait_prompts(7)
    assert texts(phone)[5] == "您尾号1234的借记卡可用余额为12345.67元。"
    await phone.hangup()
    result = await server.wait_result(phone)
    assert result["outcome"] == "self_service" and result["intent"] == "check_balance"
    assert result["transport"] == "websocket"
    assert "123456" not in json.dumps(result, ensure_ascii=False)  # the PIN is never kept
    assert phone.end and phone.end["outcome"] == "self_service"


async def test_barge_in_stops_the_prompt_but_a_cough_does_not(server: Server) -> None:
    server.hears("我想查余额")
    phone = await server.plain(ack_marks=False)  # the caller's phone is still playing
    await phone.wait_prompts(2)
    await phone.ack(phone.prompts[0].mark)  # the notice has played; the greeting has not
    await phone.say(COUGH, tail_ms=400)
    await asyncio.sleep(0.3)
    assert "clear" not in phone.events
    await phone.say(SPEECH)
    await phone.wait_prompts(4)
    assert "clear" in phone.events
    assert phone.events.index("clear") < len(phone.events) - 1
    assert texts(phone)[2].startswith("好的，为了保护您的账户安全")
    await phone.hangup()
    await server.wait_result(phone)


async def test_the_recording_notice_plays_through(server: Server) -> None:
    server.hears("我想查余额")
    phone = await server.plain(ack_marks=False)
    await phone.wait_prompts(2)
    await phone.say(SPEECH)  # while the notice is still playing: not an interruption
    await asyncio.sleep(0.5)
    assert "clear" not in phone.events and len(phone.prompts) == 2
    await phone.hangup()
    result = await server.wait_result(phone)
    assert [t for t in result["turns"] if "say" in t] == []  # nothing was heard


async def test_zero_mid_verification_goes_to_an_agent(server: Server) -> None:
    server.hears("我想查余额")
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    await phone.wait_prompts(4)  # asking for the PIN
    await phone.dtmf("0")
    result = await server.wait_result(phone)
    assert result["outcome"] == "escalated" and result["queue"] == "general"
    assert texts(phone)[-1].startswith("好的，正在为您转接")  # heard before the line closed


async def test_keys_end_after_a_pause_without_hash(server: Server) -> None:
    server.hears("我想查余额")
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    await phone.wait_prompts(4)
    await phone.dtmf("123456")  # no '#': the inter-digit timeout ends the entry
    await phone.wait_prompts(6)
    assert texts(phone)[4] == "身份验证成功。"
    await phone.hangup()
    result = await server.wait_result(phone)
    assert result["turns"][-2]["input"] == {"dtmf": "******"}


async def test_two_silences_escalate_as_no_input(server: Server) -> None:
    phone = await server.plain()
    result = await server.wait_result(phone, timeout=30)
    assert result["outcome"] == "escalated" and result["reason"] == "no_input"
    assert [t["input"] for t in result["turns"]] == [{"silence": True}, {"silence": True}]


async def test_two_hesitations_on_a_voice_call_escalate_as_no_match(server: Server) -> None:
    """SPEC rule 1 on the voice path: 嗯…… and 喂，听得到吗 are nothing said, never an intent."""
    server.hears("嗯……", "喂，听得到吗")
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    await phone.wait_prompts(3)
    await phone.say(SPEECH)
    result = await server.wait_result(phone, timeout=30)
    assert (result["outcome"], result["queue"], result["reason"]) == (
        "escalated", "general", "no_match")
    assert [t["intent"] for t in result["turns"]] == ["nlu_fallback", "nlu_fallback"]


@pytest.mark.fault("caller hangs up mid-utterance")
async def test_hangup_mid_utterance_keeps_what_was_said(server: Server) -> None:
    server.hears("我想查余额")
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.send_audio(SPEECH)  # speaking, no pause yet ...
    await phone.hangup()  # ... and gone
    result = await server.wait_result(phone)
    assert result["outcome"] == "hangup"
    assert result["turns"][-1]["input"] == {"hangup": True, "heard": "我想查余额"}


@pytest.mark.fault("caller audio stops mid-utterance")
async def test_audio_that_stops_mid_utterance_is_taken_as_said(server: Server) -> None:
    """A stream that stalls mid-word (no hang-up, no silence to end the utterance): what
    was heard is the answer, after VoiceSettings.audio_stall_ms, not a call left hanging."""
    server.hears("我想查余额")
    phone = await server.plain(call_id="stalled-stream")
    await phone.wait_prompts(2)
    await phone.send_audio(SPEECH)  # speaking ... and then no audio at all
    await phone.wait_prompts(4, timeout=10)
    assert texts(phone)[3] == "请输入您的6位电话银行密码，以井号键结束。"
    session = next(s for s in server.gateway.live.values() if s.external_id == "stalled-stream")
    await phone.hangup()
    result = await server.wait_result(phone)
    assert result["turns"][0]["input"] == {"say": "我想查余额"}
    speech = [e for e in session.events if isinstance(e, TranscriptFinal)]
    assert speech[0].stalled is True, speech


@pytest.mark.fault("connection closed mid-call (FIN)")
async def test_a_dropped_connection_still_ends_and_records_the_call(server: Server) -> None:
    phone = await server.plain()
    await phone.wait_prompts(1)
    await phone.drop()
    result = await server.wait_result(phone)
    assert result["outcome"] == "hangup" and result["transport"] == "websocket"


def _reset(transport: asyncio.BaseTransport) -> None:
    """Close with a TCP RST, not a FIN: what a crashed phone or a dead NAT does."""
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@pytest.mark.fault("connection reset mid-utterance (RST)")
async def test_a_connection_reset_mid_utterance_ends_the_call_keeping_what_was_said(
        server: Server) -> None:
    server.hears()  # the bystander says nothing
    server.hears("我想查余额")
    server.hears("我要投诉")
    bystander = await server.plain()
    await bystander.wait_prompts(2)

    async def ended(count: int) -> dict:
        for _ in range(200):
            if len(server.gateway.results) > count:
                return server.gateway.results[-1].as_dict()
            await asyncio.sleep(0.05)
        raise AssertionError("the call did not end")

    # The plain socket, then AudioSocket: each reset while the caller is speaking.
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.send_audio(SPEECH)
    await asyncio.sleep(0.3)  # read by the engine: a reset drops data still unread
    count = len(server.gateway.results)
    _reset(phone.ws._response.connection.transport)
    result = await ended(count)
    assert result["outcome"] == "hangup" and result["transport"] == "websocket"
    assert result["turns"][-1]["input"] == {"hangup": True, "heard": "我想查余额"}
    call_uuid = "5d0c8a0e-2b1f-4a57-8c5e-7e1f0a9b3c4d"
    await register_asterisk_call(server.url, TOKEN, call_uuid, KNOWN, "zh")
    asterisk = await AsteriskPhone().connect(*server.audiosocket, call_uuid=call_uuid)
    notice = await server.gateway.services.prompts.render(
        "为了提高服务质量，您的通话可能会被录音。", "cmn", "zh")
    while asterisk.audio_bytes < len(notice) + 8000:  # past the notice, into the greeting
        await asyncio.sleep(0.02)
    await asterisk.send_audio(SPEECH)
    await asyncio.sleep(0.3)
    count = len(server.gateway.results)
    _reset(asterisk.writer.transport)
    result = await ended(count)
    assert (result["external_id"], result["outcome"]) == (call_uuid, "hangup")
    assert result["turns"][-1]["input"] == {"hangup": True, "heard": "我要投诉"}
    # The call that was not reset went on to its own end (two silences: an agent).
    await bystander.wait_closed(30)
    assert bystander.end and (bystander.end["outcome"], bystander.end["reason"]) == (
        "escalated", "no_input"), bystander.end


@pytest.mark.fault("malformed messages")
async def test_malformed_messages_are_skipped_and_the_call_goes_on(server: Server,
                                                                    caplog) -> None:
    server.hears("我想查余额")
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.ws.send_str("{not json")
    await phone.ws.send_bytes(b"\x01\x02\x03")  # not whole 16-bit samples
    await phone.ws.send_json({"type": "dtmf", "digit": "9817"})  # never echoed: a PIN?
    await phone.ws.send_json({"type": "teleport"})
    await phone.say(SPEECH)
    await phone.wait_prompts(4)
    assert texts(phone)[3] == "请输入您的6位电话银行密码，以井号键结束。"
    await phone.hangup()
    await server.wait_result(phone)
    metrics = await _get(server, "/metrics")
    assert 'ivr_malformed_messages_total{transport="websocket"} 4.0' in metrics
    assert "dtmf digit of 4 characters is not a key" in caplog.text
    assert "9817" not in caplog.text


@pytest.mark.fault("oversized and hostile frames")
async def test_a_hostile_client_never_affects_another_call(server: Server) -> None:
    server.hears("我想查余额")
    good = await server.plain()
    hostile = await server.plain()
    await good.wait_prompts(2)
    await hostile.wait_prompts(1)
    for _ in range(60):
        await hostile.ws.send_str("garbage")  # past the malformed cap: dropped
    await hostile.wait_closed(10)
    big = await server.plain()
    await big.wait_prompts(1)
    await big.ws.send_bytes(b"\0" * (65 * 1024 + 2))  # over the message cap: dropped
    await big.wait_closed(10)
    await good.say(SPEECH)
    await good.wait_prompts(4)
    await good.dtmf("123456#")
    await good.wait_prompts(7)
    assert texts(good)[5] == "您尾号1234的借记卡可用余额为12345.67元。"
    await good.hangup()
    assert (await server.wait_result(good))["outcome"] == "self_service"


@pytest.mark.fault("wrong codec")
async def test_twilio_signature_token_and_codec_are_checked(server: Server) -> None:
    url = f"{server.ws_url}/twilio"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await TwilioPhone().connect(url, headers={"X-Twilio-Signature": "forged"})
    assert refused.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await PlainPhone().connect(f"{server.ws_url}/ws", "wrong-token")
    assert refused.value.status == 401
    # Twilio signs the URL it dialled with the account's auth token (HMAC-SHA1, base64).
    signed = base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), url.encode(), hashlib.sha1)
                              .digest()).decode()
    phone = await TwilioPhone().connect(url, headers={"X-Twilio-Signature": signed},
                                        media_format={"encoding": "audio/x-l16",
                                                      "sampleRate": 16000, "channels": 1})
    await phone.wait_closed(10)
    assert phone.ws.close_code == 1008 and phone.prompts == []


@pytest.mark.fault("malformed messages")
async def test_a_refused_start_closes_with_its_reason_cut_between_characters(
        server: Server) -> None:
    """A close frame's reason is capped in bytes; a Chinese one is cut between characters
    (a split character is invalid UTF-8, and a client refuses the whole close frame)."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{server.ws_url}/ws", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await ws.send_json({"type": "开始通话" * 10})
        error = (await asyncio.wait_for(ws.receive_json(), 5))["error"]
        closing = await asyncio.wait_for(ws.receive(), 5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008, closing
    assert len(error.encode()) > 120 and error.startswith(closing.extra)
    assert len(closing.extra.encode()) > 115


@pytest.mark.fault("a connection that never starts a call")
async def test_a_silent_connection_is_dropped_after_the_first_message_timeout(
        server: Server) -> None:
    server.gateway.limits = type(server.gateway.limits)(first_message_s=0.5)
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"{server.ws_url}/ws", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            msg = await asyncio.wait_for(ws.receive_json(), 5)
            assert msg["type"] == "error" and "no start message" in msg["error"]
        reader, writer = await asyncio.open_connection(*server.audiosocket)
        assert await asyncio.wait_for(reader.read(), 5) == b"\xff\x00\x01\x01"  # error frame
        writer.close()
    finally:
        server.gateway.limits = type(server.gateway.limits)()


async def test_twilio_call_with_keys_and_marks(server: Server) -> None:
    server.hears("我想查余额")
    url = f"{server.ws_url}/twilio"
    signed = base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), url.encode(), hashlib.sha1)
                              .digest()).decode()
    phone = await TwilioPhone().connect(url, caller=KNOWN, locale="zh",
                                        headers={"X-Twilio-Signature": signed})
    await phone.wait_prompts(2)
    await phone.send_raw(json.dumps({"event": "media", "streamSid": phone.stream_sid,
                                     "media": {"payload": "%%%not base64"}}))
    await phone.say(SPEECH)
    await phone.wait_prompts(4)
    await phone.dtmf("123456#")
    await phone.wait_prompts(7)
    assert texts(phone) == [""] * 7  # Twilio gets audio and marks, no text
    assert phone.events.count("mark") == 7 and "media" in phone.events
    await phone.hangup()
    result = await server.wait_result(phone)
    assert result["outcome"] == "self_service" and result["external_id"] == phone.call_sid
    assert result["transport"] == "twilio"


async def test_audiosocket_call_paced_with_barge_in(server: Server) -> None:
    call_uuid = "0b5f7c1e-7a54-4c3e-9b0c-2f4d9c1d2e3f"
    await register_asterisk_call(server.url, TOKEN, call_uuid, KNOWN, "zh")
    server.hears("我要投诉")
    phone = await AsteriskPhone().connect(*server.audiosocket, call_uuid=call_uuid)
    await phone.send_frame(0x42, b"?")  # unknown kind: skipped
    render = server.gateway.services.prompts.render
    notice = await render("为了提高服务质量，您的通话可能会被录音。", "cmn", "zh")
    while phone.audio_bytes < len(notice) + 16000:  # a second into the greeting
        await asyncio.sleep(0.05)
    await phone.say(SPEECH)  # barge-in: Asterisk stops getting the greeting
    await phone.wait_closed(60)
    result = server.result(call_uuid)
    assert result["caller"] == KNOWN and result["transport"] == "audiosocket"
    assert result["outcome"] == "escalated" and result["queue"] == "complaints"
    assert phone.hangup_received
    greeting = await render(result["greeting"][0], "cmn", "zh")
    transfer = await render(result["turns"][-1]["prompts"][-1], "cmn", "zh")
    assert phone.audio_bytes < len(notice) + len(greeting) + len(transfer) - 8000


@pytest.mark.fault("recogniser failing (Python error)")
async def test_a_recogniser_failure_ends_in_an_agent_not_a_dead_call(server: Server) -> None:
    server.scripts.append(BrokenRecognizer)
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    result = await server.wait_result(phone)
    assert result["outcome"] == "escalated" and result["reason"] == "engine_error"
    assert texts(phone)[-1] == "抱歉，系统出了点问题，正在为您转接人工服务，请稍候。"


@pytest.mark.fault("NLU / dialogue timing out")
async def test_a_stuck_dialogue_layer_sends_the_caller_to_an_agent(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    async def never_answers(*args) -> None:
        await asyncio.sleep(3600)  # on the dialogue thread, as a hung action would

    # A real hang, not a tight timeout: a 1 ms limit let a fast greeting through.
    monkeypatch.setattr(server.gateway.services.engines["zh"], "_handle", never_answers)
    services = server.gateway.services
    normal = services.settings
    services.settings = dataclasses.replace(normal, dialogue_timeout_s=0.5)
    try:
        phone = await server.plain()
        result = await server.wait_result(phone)
    finally:
        services.settings = normal
    assert result["outcome"] == "escalated" and result["reason"] == "engine_error"
    assert texts(phone) == ["为了提高服务质量，您的通话可能会被录音。",
                            "抱歉，系统出了点问题，正在为您转接人工服务，请稍候。"]


@pytest.mark.fault("a client sending audio far faster than real time")
async def test_a_flood_of_audio_is_dropped_not_queued_without_bound(server: Server) -> None:
    server.scripts.append(SlowRecognizer)
    phone = await server.plain()
    await phone.wait_prompts(2)
    frame = tone(20, hz=300)  # the caller talking, so no-input stays off
    for _ in range(1500):  # 30 s of audio at once, far faster than it can be heard
        await phone.send_audio(frame)
    await phone.hangup()
    result = await server.wait_result(phone)
    assert result["outcome"] == "hangup"  # the call still ended, and was recorded
    # At most 500 frames (10 s) wait; the rest, less what was heard meanwhile, is dropped.
    assert 500 <= result["dropped_audio_frames"] < 1000


async def test_health_and_metrics(server: Server) -> None:
    health = json.loads(await _get(server, "/health"))
    assert health["status"] == "ok" and health["locales"]["zh"]["speech"] is True
    metrics = await _get(server, "/metrics")
    assert "ivr_calls_total" in metrics and "ivr_response_seconds_bucket" in metrics
    async with aiohttp.ClientSession() as http:
        assert (await http.get(f"{server.url}/metrics")).status == 401  # token required


async def test_metrics_show_dialogue_lock_waits_and_the_call_logs_state(
        server: Server) -> None:
    def waits() -> float:
        return server.gateway.metrics.registry.get_sample_value(
            "ivr_dialogue_lock_wait_seconds_count") or 0.0

    before = waits()
    server.hears("我想查余额")
    phone = await server.plain()
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    await phone.wait_prompts(4)
    await phone.hangup()
    await server.wait_result(phone)
    assert waits() == before + 2  # the greeting and the one input: each waited for its lock
    scraped = {s.name: s.value for family in text_string_to_metric_families(
        await _get(server, "/metrics")) for s in family.samples}
    assert scraped["ivr_dialogue_lock_wait_seconds_count"] == before + 2
    assert scraped["ivr_call_log_failing"] == 0
    assert scraped["ivr_call_log_dropped_items_total"] == 0
    assert "ivr_call_log_pending_items" in scraped and scraped["ivr_recordings_cut_total"] == 0


async def _get(server: Server, path: str) -> str:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(f"{server.url}{path}",
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 200
        return await resp.text()

