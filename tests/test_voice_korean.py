"""Korean calls end to end over each protocol, through real sockets on loopback: espeak-ng
speech (made repeatable by ``sox -D``) sent at 8 kHz, decoded by the real Vosk Korean
model, understood by the Korean Rasa model, ending in the expected route."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import KNOWN
from phones import (
    AsteriskPhone,
    PlainPhone,
    TwilioPhone,
    register_asterisk_call,
    serving,
    speak,
)

from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import AUDIOSOCKET_ADDRESS, GATEWAY
from ivr.voice.asr import ScriptedRecognizer, SpeechModel, VoskRecognizer
from ivr.voice.audio import pcm_to_ulaw, ulaw_to_pcm
from ivr.voice.gateway import Gateway
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

TOKEN = "ko-test-token"


class Server:
    def __init__(self, url: str, gateway: Gateway, audiosocket: tuple[str, int]) -> None:
        self.ws_url = url.replace("http", "ws")
        self.url = url
        self.gateway = gateway
        self.audiosocket = audiosocket

    async def result(self, call_id: str, timeout: float = 30) -> dict:
        """The result of a call by its id or by the telephony's id for it (a callSid or
        UUID: the call's ``external_id``, as the engine names every call itself)."""
        for _ in range(int(timeout / 0.05)):
            for report in self.gateway.results:
                if call_id in (report.call_id, report.external_id):
                    return report.as_dict()
            await asyncio.sleep(0.05)
        raise AssertionError(f"call {call_id} did not end")

    async def render(self, text: str) -> bytes:
        return await self.gateway.services.prompts.render(text, "ko", "ko")


@pytest.fixture(scope="module")
async def server(engine, ko_engine, project) -> AsyncIterator[Server]:
    locales = load_voice_locales(project.root / "locales")
    korean = SpeechModel.load("ko", locales["ko"].asr_model or "", end_of_speech_ms=500)

    def recognizer_for(locale: str):
        return VoskRecognizer(korean) if locale == "ko" else ScriptedRecognizer([])

    services = VoiceServices(
        engines={"zh": engine, "ko": ko_engine}, locales=locales,
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=recognizer_for, default_locale="zh",
        settings=VoiceSettings(no_input_ms=4000, playback_grace_s=0.5))
    app = build_app(ServerSettings(audiosocket_port=0, ws_token=TOKEN,
                                   twilio_auth_token=None), services)
    async with serving(app) as url:
        yield Server(url, app[GATEWAY], app[AUDIOSOCKET_ADDRESS])


async def test_twilio_korean_call_chooses_language_by_voice_and_self_serves(
        server: Server) -> None:
    # No locale from the telephony: the caller is asked, and answers in Korean.
    phone = await TwilioPhone().connect(f"{server.ws_url}/twilio", caller=KNOWN)
    await phone.wait_prompts(2)  # the Mandarin, then the Korean language prompt
    await phone.say(speak("한국어"))
    await phone.wait_prompts(4)  # Korean notice and greeting
    await phone.say(speak("거래 내역"))
    await phone.wait_prompts(6)  # verify first, then the PIN
    await phone.dtmf("123456#")
    await phone.wait_prompts(9)
    await phone.say(speak("아니요"))  # nothing else
    await phone.wait_closed(30)
    result = await server.result(phone.call_sid)
    assert result["locale"] == "ko" and result["outcome"] == "self_service"
    assert result["intent"] == "recent_transactions"
    said = [t["input"].get("say") for t in result["turns"]]
    assert said[0] == "거래 내역" and said[-1] == "아니요"
    assert result["turns"][-1]["prompts"] == ["전화 주셔서 감사합니다. 좋은 하루 보내십시오."]
    # The caller heard exactly the Korean greeting's speech (mu-law on the wire).
    greeting = await server.render(result["greeting"][0])
    assert bytes(phone.prompts[3].audio) == ulaw_to_pcm(pcm_to_ulaw(greeting))


async def test_plain_socket_korean_call_gets_exchange_rates(server: Server) -> None:
    phone = await PlainPhone().connect(f"{server.ws_url}/ws", TOKEN, caller=KNOWN,
                                       locale="ko")
    await phone.wait_prompts(2)
    assert phone.prompts[1].text.startswith("안녕하십니까")
    await phone.say(speak("환율"))
    await phone.wait_prompts(4)
    rates = phone.prompts[2].text
    assert "기준" in rates and "달러" in rates
    assert bytes(phone.prompts[2].audio) == await server.render(rates)
    await phone.say(speak("아니요"))
    await phone.wait_closed(30)
    assert phone.end and phone.end["outcome"] == "self_service"
    assert phone.end["intent"] == "exchange_rate"


async def test_audiosocket_korean_complaint_barges_in_and_reaches_the_queue(
        server: Server) -> None:
    call_uuid = "7d0c4f8e-2b1a-4f5e-8c3d-9a6b5e4f3c2d"
    await register_asterisk_call(server.url, TOKEN, call_uuid, KNOWN, "ko")
    phone = await AsteriskPhone().connect(*server.audiosocket, call_uuid=call_uuid)
    notice = await server.render("고객님의 통화는 서비스 품질 향상을 위해 녹음됩니다.")
    while phone.audio_bytes < len(notice) + 16000:  # paced: a second into the greeting
        await asyncio.sleep(0.05)
    await phone.say(speak("민원"), pace=0.02)  # spoken in real time, over the greeting
    await phone.wait_closed(60)
    result = await server.result(call_uuid)
    assert result["outcome"] == "escalated" and result["queue"] == "complaints"
    assert result["skills"] == ["ko"] and result["reason"]
    assert result["handoff"]["locale"] == "ko"
    assert phone.hangup_received
    greeting = await server.render(result["greeting"][0])
    assert phone.audio_bytes < len(notice) + len(greeting)  # the greeting was cut


async def test_the_language_menu_takes_keys_and_defaults_to_mandarin(server: Server) -> None:
    korean = await PlainPhone().connect(f"{server.ws_url}/ws", TOKEN, caller=KNOWN)
    await korean.wait_prompts(2)
    assert [p.text for p in korean.prompts] == [
        "普通话服务请按1，或者说普通话。",
        "한국어 서비스는 2번을 누르시거나 한국어라고 말씀해 주세요."]
    await korean.dtmf("2")
    await korean.wait_prompts(4)
    assert korean.prompts[3].text.startswith("안녕하십니까")
    await korean.hangup()
    await korean.wait_closed(10)

    silent = await PlainPhone().connect(f"{server.ws_url}/ws", TOKEN, caller=KNOWN)
    await silent.wait_prompts(6, timeout=30)  # asked twice, then Mandarin by default
    assert silent.prompts[4].text == "为了提高服务质量，您的通话可能会被录音。"
    await silent.hangup()
    await silent.wait_closed(10)
    assert (await server.result(silent.end["call_id"]))["locale"] == "zh"


async def test_two_korean_hesitations_on_a_voice_call_escalate_as_no_match(
        server: Server) -> None:
    """SPEC rule 1 on the Korean voice path, decoded by the real Vosk model in grammar mode:
    a voice that matches no menu phrase (음…) is a no-match, not silence, and no dead air
    follows it; twice, and a Korean-speaking agent takes the call."""
    phone = await PlainPhone().connect(f"{server.ws_url}/ws", TOKEN, caller=KNOWN,
                                       locale="ko")
    await phone.wait_prompts(2)
    await phone.say(speak("음"))
    await phone.wait_prompts(3)
    assert phone.prompts[2].text.startswith("죄송합니다")  # asked again, in Korean
    await phone.say(speak("음"))
    await phone.wait_closed(30)
    assert phone.end
    result = await server.result(phone.end["call_id"])
    assert (result["outcome"], result["queue"], result["reason"]) == (
        "escalated", "general", "no_match")
    assert result["skills"] == ["ko"]
    assert [t["intent"] for t in result["turns"]] == ["nlu_fallback", "nlu_fallback"]
    assert all(t["input"].get("unmatched") for t in result["turns"])
