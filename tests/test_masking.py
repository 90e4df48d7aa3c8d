"""Masking of PINs, card and ID numbers (SPEC rule 3): the masker on numbers in every form
a caller writes or a recogniser hears, then real calls (text and voice) that say secrets,
scanned wherever the words could land: call-log events, the handoff bundle, the console's
JSON, the metrics text and the server log."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import KNOWN, UNKNOWN
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phones import PlainPhone, serving, tone
from test_console import OPS_PASSWORD, OPS_USER, http_client, login
from test_fuzz_properties import Secret, revealed, secrets

from ivr.calllog.recorder import CallLogSettings, CallRecorder
from ivr.console import CONSOLE
from ivr.console.auth import hash_password
from ivr.core.events import CallEvent, to_json
from ivr.core.masking import longest_number, mask_card, mask_entry, mask_text
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.simulate import parse_script, run_script
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import CALL_LOG, GATEWAY
from ivr.voice.asr import Hypothesis, ScriptedRecognizer
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

# What the engine says when a PIN is said aloud, by locale (knowledge labels).
KEYED = {locale: KnowledgeBase.load(Path(__file__).parents[1] / "knowledge" / f"{locale}.yml")
         .labels.keyed_secrets for locale in ("zh", "ko")}


def test_card_keeps_only_its_last_four():
    assert mask_card("6222 0200 0000 1234") == "************1234"
    assert mask_card("6222.0200.0000\u200b1234") == "************1234"
    assert mask_card("六二二二 零二零零 零零零零 幺二三四") == "************1234"


@pytest.mark.parametrize(("text", "expected"), [
    ("我的密码是123456", "我的密码是******"),
    ("卡号6222020000001234", "卡号************1234"),
    ("卡号 6222-0200-0000-1234 丢了", "卡号 ************1234 丢了"),
    ("身份证11010519491231002X", "身份证**************002X"),
    ("密码是一二三四五六", "密码是******"),
    # Separators of any kind and length, invisible characters inside.
    ("卡号6222.0202.0011.2233", "卡号************2233"),
    ("卡号6222/0202/0011/2233", "卡号************2233"),
    ("卡号6222_0202_0011_2233", "卡号************2233"),
    ("卡号6222、0202、0011、2233", "卡号************2233"),
    ("卡号6222，0202，0011，2233", "卡号************2233"),
    ("卡号6222    0202    0011    2233", "卡号************2233"),
    ("卡号６２２２－０２０２－００１１－２２３３", "卡号************２２３３"),
    ("密码123\u200b456", "密码******"),
    ("密码1\u200c2\u200d3\u20604\ufeff5\u00ad6", "密码******"),
    # Chinese numerals: digit by digit, financial, 幺 and 两, with place values.
    ("密码一二三，四五六", "密码******"),
    ("密码壹贰叁肆伍陆", "密码******"),
    ("密码幺两三 四五六", "密码******"),
    ("账号十二万三千四百五十六", "账号******"),
    # Korean: run together, as words, native numbers.
    ("비밀번호는 일이삼사오육입니다", "비밀번호는 ******입니다"),
    ("비밀번호는 일 이 삼 사 오 육", "비밀번호는 ******"),
    ("비밀번호는 하나 둘 셋 넷 다섯 여섯", "비밀번호는 ******"),
    ("비밀번호는 십이만 삼천사백오십육", "비밀번호는 **********"),
    # A word glued to a number keeps its letters.
    ("금요일 123456", "금요일 ******"),
    ("星期一 123456", "星期一 ******"),
    # Amounts and dates stay readable.
    ("还款3210元，25号", "还款3210元，25号"),
    ("还款3210.00元，25号", "还款3210.00元，25号"),
    ("余额12,345.67元", "余额12,345.67元"),
    ("刷了五千八，3月25日", "刷了五千八，3月25日"),
    ("两万块", "两万块"),
    ("被骗了二十万", "被骗了二十万"),
    ("이십만 원 보냈어요", "이십만 원 보냈어요"),
    ("2024年5月25日12:30", "2024年5月25日12:30"),
])
def test_free_text_masks_long_numbers(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_an_entry_masks_every_word_and_a_number_is_measured_in_any_form() -> None:
    assert mask_entry("幺二三 思悟流") == "*** ***"  # whatever the recogniser heard
    assert longest_number("等一下") == 1 and longest_number("一二三") == 3
    assert longest_number("十二万三千四百五十六") == 6 and longest_number("二十万") == 1


# --- real calls: nothing said aloud is kept -------------------------------------------------
def strings(data: Any) -> list[str]:
    """Every string in a JSON-like structure (keys too): where text can be read."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in [str(k), *strings(v)]]
    if isinstance(data, list | tuple):
        return [s for v in data for s in strings(v)]
    return []


def assert_hidden(where: str, data: Any, *hidden: Secret) -> None:
    for text in strings(data):
        for secret in hidden:
            assert not revealed(text, secret), f"{where}: {text!r} reveals {secret.text!r}"


async def test_a_pin_said_while_it_is_asked_for_is_refused_and_never_kept(call, ko_call) -> None:
    result = await call([{"say": "查余额"}, {"say": "幺二三 四五六"}, {"dtmf": "123456#"}])
    turns = result["turns"]
    assert turns[1]["input"] == {"say": "*** ***", "masked": "pin"}
    assert turns[1]["prompts"][0] == KEYED["zh"]["pin"]
    assert result["outcome"] == "self_service"  # keyed, it verifies
    replayed = await call([{"say": "查余额"}, {"say": "*** ***"}])  # as ivr replay says it
    assert replayed["turns"][1]["prompts"][0] == KEYED["zh"]["pin"]
    ko = await ko_call([{"say": "잔액 조회"}, {"say": "일이삼사오육"},
                        {"say": "일 이 삼 사 오 육"}])
    assert ko["turns"][1]["prompts"][0] == KEYED["ko"]["pin"]
    assert ko["reason"] == "no_match"  # twice: not a dead end (SPEC rule 1)
    for said in (result, ko):
        assert_hidden("result", said, Secret("123456", "", digits="123456"))


# --- real calls through the engine's app: every place the words could land --------------
TOKEN = "masking-ws-token"
SPEECH = tone(700, hz=300)  # a burst of "speech" for the recogniser below


class Overheard(ScriptedRecognizer):
    """A recogniser that hears each scripted utterance as a partial (its first half), then
    a final with n-best alternatives (the words, and the words with 幺 for 一)."""

    async def accept(self, pcm: bytes) -> Hypothesis | None:
        hyp = await super().accept(pcm)
        if hyp and not hyp.final and self._utterances:
            said = self._utterances[0]
            return Hypothesis("", final=False, raw=said[:max(1, len(said) // 2)])
        return hyp

    def _next(self) -> Hypothesis:
        hyp = super()._next()
        return replace(hyp, alternatives=({"text": hyp.raw, "score": -1.0},
                                          {"text": hyp.raw.replace("一", "幺"), "score": -2.0}))


@dataclass
class Server:
    url: str
    app: web.Application
    hears: deque[list[str]]
    http: aiohttp.ClientSession

    @property
    def recorder(self) -> CallRecorder:
        return self.app[CALL_LOG]

    def observe(self, event: CallEvent) -> None:
        """What ``ivr serve`` does with each event of a call: the log and the metrics."""
        self.recorder.record(event)
        self.app[GATEWAY].metrics.observe(event)

    async def everything_about(self, call_id: str) -> dict[str, Any]:
        """The call as the console serves it, and the metrics text."""
        assert self.recorder.flush()
        async with self.http.get(f"{self.url}/console/api/calls/{call_id}") as resp:
            assert resp.status == 200, await resp.text()
            console = await resp.json()
        async with self.http.get(f"{self.url}/metrics",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200
            metrics = await resp.text()
        assert console["events"], "the call is in the log"
        return {"console": console, "metrics": metrics.splitlines()}


@pytest.fixture(scope="module")
async def server(engine, ko_engine, project, tmp_path_factory) -> AsyncIterator[Server]:
    """The engine's app (both locales, a scripted recogniser, its own call log) and an ops
    user logged in to its console."""
    tmp = tmp_path_factory.mktemp("masking")
    hears: deque[list[str]] = deque()
    locales = load_voice_locales(project.root / "locales")
    services = VoiceServices(
        engines={"zh": engine, "ko": ko_engine}, locales=locales,
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda locale: Overheard(hears.popleft() if hears else [],
                                                end_of_speech_ms=300),
        default_locale="zh",
        settings=VoiceSettings(no_input_ms=5000, inter_digit_ms=800, playback_grace_s=0.5))
    settings = ServerSettings(port=0, audiosocket_port=-1, ws_token=TOKEN, max_calls=0,
                              call_log=CallLogSettings(f"sqlite:///{tmp / 'calls.sqlite3'}",
                                                       tmp / "rec", "masking"))
    app = build_app(settings, services)
    async with serving(app) as url, http_client() as http:
        app[CONSOLE].accounts.set_user(OPS_USER, "ops", hash_password(OPS_PASSWORD))
        await login(http, url, OPS_USER, OPS_PASSWORD)
        yield Server(url, app, hears, http)


FEW_CALLS = settings(max_examples=6, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
LEADS = {"zh": ["我的卡号是", "身份证", "账号", "我的密码是", ""],
         "ko": ["제 카드 번호는 ", "계좌 번호 ", "비밀번호는 ", ""]}
ASKS = {"zh": ["查余额", "信用卡账单", "挂失"], "ko": ["잔액 조회", "카드 대금", "분실 신고"]}
AGENT = {"zh": "转人工", "ko": "상담원 연결"}


@FEW_CALLS
@given(locale=st.sampled_from(["zh", "ko"]), caller=st.sampled_from([KNOWN, UNKNOWN]),
       free=secrets, entered=secrets, data=st.data())
async def test_no_secret_said_in_any_form_is_kept_anywhere(
        server: Server, caplog: pytest.LogCaptureFixture, locale: str, caller: str,
        free: Secret, entered: Secret, data: st.DataObject) -> None:
    """A caller says a number in one form or another, then asks for something that needs
    a PIN (a card number first, unknown to the bank), says another number while it is asked
    for, and asks for an agent: neither number is in the call log, the handoff, the
    console's JSON for the call, the metrics or the server log."""
    # The caller's own number is no secret; a drawn one like it could not be told apart.
    assume(not any(revealed(f"{KNOWN} {UNKNOWN}", s) for s in (free, entered)))
    caplog.set_level(logging.INFO)
    lead = data.draw(st.sampled_from(LEADS[locale]))
    turns = [{"say": lead + free.text}, {"say": data.draw(st.sampled_from(ASKS[locale]))},
             {"say": entered.text}, {"say": AGENT[locale]}]
    script = parse_script({"caller": caller, "locale": locale, "turns": turns}, Path("<t>"))
    logged: list[CallEvent] = []

    def sink(event: CallEvent) -> None:
        logged.append(event)
        server.observe(event)

    report = await run_script(script, server.app[GATEWAY].services.engines[locale], None, sink)
    result = report.as_dict()
    hidden = [s for s in (free, entered) if s.digits]
    assert result["outcome"] == "escalated", result  # the handoff is there to be checked
    assert_hidden("the call log", [to_json(e) for e in logged], *hidden)
    assert_hidden("the handoff", result["handoff"], *hidden)
    assert_hidden("the result", result, *hidden)
    for where, seen in (await server.everything_about(result["call_id"])).items():
        assert_hidden(where, seen, *hidden)
    assert_hidden("the server log", [r.getMessage() for r in caplog.records], *hidden)


async def heard(phone: PlainPhone, fragment: str, timeout: float = 30) -> None:
    """Wait for a prompt holding ``fragment``."""
    async def said() -> None:
        while not any(fragment in p.text for p in phone.prompts):
            assert not phone.closed.is_set(), [p.text for p in phone.prompts]
            await asyncio.sleep(0.02)

    await asyncio.wait_for(said(), timeout)


async def test_a_voice_call_keeps_nothing_heard_while_a_pin_is_asked_for(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Partials, finals and their n-best, the speech events and the turns: the PIN said
    aloud (heard partly as other words: 思悟流 for 四五六) is nowhere; said later, outside
    the entry, a card number is masked as in text."""
    caplog.set_level(logging.INFO)
    pin = Secret("幺二三 思悟流", "", digits="123456")
    card = Secret("6222.0202.0011.2233", "", digits="6222020200112233")
    server.hears.append(["我想查余额", pin.text, f"我的卡号是{card.text}"])
    phone = await PlainPhone().connect(f"{server.url.replace('http', 'ws')}/ws", TOKEN,
                                       caller=KNOWN, locale="zh")
    await phone.wait_prompts(2)
    await phone.say(SPEECH)
    await heard(phone, "密码")
    await phone.say(SPEECH)
    await heard(phone, KEYED["zh"]["pin"])
    await phone.dtmf("123456#")
    await heard(phone, "余额为")
    count = len(phone.prompts)
    await phone.say(SPEECH)
    await phone.wait_prompts(count + 1)
    await phone.hangup()
    await phone.wait_closed()
    assert phone.end and phone.end.get("call_id")
    seen = await server.everything_about(phone.end["call_id"])
    events = seen["console"]["events"]
    assert {"partial", "speech", "turn"} <= {e["kind"] for e in events}
    speech = [e["data"] for e in events if e["kind"] == "speech"]
    assert [s["raw"] for s in speech if s.get("muted")] == ["*** ***"], speech
    for where, data in seen.items():
        assert_hidden(where, data, pin, card)
    assert_hidden("the server log", [r.getMessage() for r in caplog.records], pin, card)
