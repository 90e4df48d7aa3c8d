"""Mandarin callers when no Mandarin speech model is installed (this machine's default):
the greeting offers a key menu and the call runs on keys (issue 16 item 2).

The socket tests start the real server with the real zh dialogue model and the speech
models as ``ivr serve`` loads them, the zh one pointed at a folder with no model: the same
"not installed" path as on a fresh install, whatever this machine has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import KNOWN, copy_project
from phones import PlainPhone, TwilioPhone, serving, tone
from test_calllog_voice import Server as LoggingServer

from ivr.calllog.recorder import CallLogSettings
from ivr.calllog.replay import Replayer
from ivr.core.events import (
    CallEvent,
    KeyPressed,
    Routed,
    TurnTaken,
    VerificationChanged,
    to_json,
)
from ivr.dialogue.engine_factory import load_speech_models
from ivr.errors import DataFileError
from ivr.project import Project
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings, asr_workers
from ivr.trainer.data_validation import validate
from ivr.voice.keypad import Keypad
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import VoiceLocale, load_voice_locales

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

TOKEN = "keypad-test-token"
ROOT = Path(__file__).resolve().parent.parent


# --- the menus as data ---------------------------------------------------------------------
def zh_locale() -> VoiceLocale:
    return load_voice_locales(ROOT / "locales")["zh"]


def zh_keypad() -> Keypad:
    keypad = zh_locale().keypad
    assert keypad is not None
    return keypad


def test_the_greeting_is_worded_for_keys_and_followed_by_the_main_menu() -> None:
    prompts, names, menu = zh_keypad().offer(["您好，……您可以说查余额……"], ["utter_greet"])
    assert prompts[0] == "您好，欢迎致电本行客服热线。"  # never "您可以说…" to a caller unheard
    assert "查询余额请按1" in prompts[1] and "人工服务请按0" in prompts[1]
    assert names == ["utter_greet", "keypad_main"]
    assert (menu.keys["1"].intent, menu.keys["0"].intent) == ("check_balance", "human_agent")


def test_the_last_prompt_with_a_menu_decides_which() -> None:
    keypad = zh_keypad()
    _, names, menu = keypad.offer(["身份验证成功。", "余额……", "请问还有什么可以帮您？"],
                                  ["utter_verified", "utter_balance", "utter_anything_else"])
    assert menu.name == "more" and names[-1] == "keypad_more"
    _, _, menu = keypad.offer(["请问要挂失的是借记卡还是信用卡？"], ["utter_ask_which_card_lost"])
    assert menu.keys["2"].intent == "inform"
    assert dict(menu.keys["2"].entities) == {"card_type": "信用卡"}
    _, _, menu = keypad.offer(["抱歉，请问您要办理什么业务？"], ["utter_ask_topic_again"])
    assert menu.name == "main"  # any other prompt that waits: the main menu


@pytest.mark.parametrize("block, message", [
    ({"menus": {"main": {"prompt": "按1", "keys": {"#": "check_balance"}}}, "default": "main"},
     "not a menu key"),
    ({"menus": {"main": {"prompt": "按1", "keys": {"1": "check_balance"}}}, "default": "other"},
     "menu 'other'"),
    ({"menus": {"main": {"prompt": "按1", "keys": {"1": ["check_balance"]}}}, "default": "main"},
     "a key means an intent"),
    ({"menus": {"main": {"keys": {"1": "check_balance"}}}, "default": "main"}, "malformed"),
])
def test_a_broken_keypad_block_is_one_clear_error(block: dict[str, Any], message: str) -> None:
    with pytest.raises(DataFileError, match=message) as error:
        Keypad.load(block, ROOT / "locales" / "zh.yml")
    assert str(ROOT) not in str(error.value)  # named by its file, never an absolute path


def test_data_validate_names_a_key_with_no_such_intent_and_an_unknown_prompt(
        tmp_path: Path) -> None:
    copy_project(ROOT, tmp_path)
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    path = tmp_path / "locales" / "zh.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"1": check_balance', '"1": check_balanse').replace(
        "utter_anything_else: more", "utter_anything_elze: more"), encoding="utf-8")
    problems = [p for p in validate(Project(tmp_path)).problems if "keypad" in p.message]
    lines = text.splitlines()
    assert [(p.path, p.message) for p in problems] == [
        ("locales/zh.yml", "keypad: intent 'check_balanse' is not in the domain"),
        ("locales/zh.yml", "keypad: after: 'utter_anything_elze' is not a response in the "
                           "domain")]
    assert "check_balance" in lines[problems[0].line - 1]  # the line it is on


# --- calls over a real socket ---------------------------------------------------------------
class Server(LoggingServer):
    async def plain(self) -> PlainPhone:
        return await PlainPhone().connect(f"{self.ws_url}/ws", TOKEN, caller=KNOWN,
                                          locale="zh")

    async def logged(self, call_id: str, timeout: float = 30) -> tuple[dict, list[CallEvent]]:
        """The call's row and events once it has ended and everything is written."""
        call = await super().logged(call_id, timeout)
        return call, await asyncio.to_thread(self.recorder.store.events, call["call_id"])


@pytest.fixture(scope="module")
async def server(engine: Any, project: Any,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    folder = tmp_path_factory.mktemp("keypad")
    zh = dataclasses.replace(load_voice_locales(project.root / "locales")["zh"],
                             asr_model=str(folder / "vosk-model-small-cn-0.22"))
    speech = await load_speech_models({"zh": zh}, end_of_speech_ms=500,  # as `ivr serve`
                                      workers=asr_workers())
    services = VoiceServices(
        engines={"zh": engine}, locales={"zh": zh},
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=speech.recognizer_for, default_locale="zh",
        settings=VoiceSettings(no_input_ms=1500, inter_digit_ms=800, playback_grace_s=0.5))
    log = CallLogSettings(url=f"sqlite:///{folder / 'calls.sqlite3'}",
                          recordings=folder / "recordings", instance="keypad-test")
    app = build_app(ServerSettings(audiosocket_port=-1, ws_token=TOKEN, call_log=log),
                    services)
    async with serving(app) as url:
        yield Server(app, url)


def heard(phone: Any) -> list[tuple[str, str]]:
    """(prompt name, text) of every prompt the phone heard (a mark is NAME-N)."""
    return [(p.mark.rsplit("-", 1)[0], p.text) for p in phone.prompts]


async def test_a_mandarin_caller_with_no_speech_model_gets_a_balance_by_keys(
        server: Server) -> None:
    async with aiohttp.ClientSession() as http:  # the server itself says zh has no model
        health = await (await http.get(f"{server.url}/health")).json()
    assert health["locales"]["zh"]["speech"] is False, health
    phone = await server.plain()
    await phone.wait_prompts(3)  # notice, greeting, menu
    assert heard(phone)[1:3] == [("utter_greet", "您好，欢迎致电本行客服热线。"),
                                 ("keypad_main", phone.prompts[2].text)]
    assert "查询余额请按1" in phone.prompts[2].text
    await phone.dtmf("1")  # 查询余额
    await phone.wait_prompts(5)
    assert [name for name, _ in heard(phone)[3:5]] == ["utter_verify_first", "utter_ask_verified"]
    await phone.dtmf("123456#")
    await phone.wait_prompts(9)
    assert [name for name, _ in heard(phone)[5:9]] == [
        "utter_verified", "utter_balance", "utter_anything_else", "keypad_more"]
    assert "12,345.67" in phone.prompts[6].text or "12345.67" in phone.prompts[6].text
    await phone.dtmf("2")  # 结束通话
    await phone.wait_closed(30)
    call, events = await server.logged(phone.end["call_id"])
    assert (call["outcome"], call["intent"]) == ("self_service", "check_balance")
    turns = [e for e in events if isinstance(e, TurnTaken)]
    assert turns[0].input == {"dtmf": "1", "menu": "check_balance"}
    assert (turns[0].intent, turns[0].confidence) == ("check_balance", 1.0)
    assert turns[1].input == {"dtmf": "******"}  # the PIN, masked as ever
    assert turns[2].input == {"dtmf": "2", "menu": "goodbye"}
    assert [e.digit for e in events if isinstance(e, KeyPressed)] == ["1", *"******", "#", "2"]
    assert "123456" not in json.dumps([to_json(e) for e in events], ensure_ascii=False)
    assert [e.state for e in events if isinstance(e, VerificationChanged)] == ["verified"]


async def test_zero_then_a_topic_reaches_that_topics_queue(server: Server) -> None:
    phone = await TwilioPhone().connect(f"{server.ws_url}/twilio", caller=KNOWN, locale="zh")
    await phone.wait_prompts(3)
    await phone.dtmf("0")  # 人工服务: which topic, so the right agent takes it?
    await phone.wait_prompts(5)
    assert [name for name, _ in heard(phone)[3:5]] == ["utter_ask_agent_topic", "keypad_main"]
    await phone.dtmf("4")  # 挂失银行卡
    await phone.wait_closed(30)
    call, events = await server.logged(phone.call_sid)
    route = next(e for e in events if isinstance(e, Routed))
    assert (call["outcome"], route.queue, route.reason, route.topic) == (
        "escalated", "cards", "caller_request", "report_lost_card")
    assert heard(phone)[-1][0] == "utter_transfer"  # heard before the line closed
    turns = [e.input for e in events if isinstance(e, TurnTaken)]
    assert turns == [{"dtmf": "0", "menu": "human_agent"},
                     {"dtmf": "4", "menu": "report_lost_card"}]


async def test_speech_to_a_line_that_cannot_hear_it_still_times_out_to_the_menu(
        server: Server) -> None:
    """Talking (heard only as sound) does not switch the no-input timer off: the caller
    hears the menu again, and a key no menu has is a no-match, never a dead end."""
    phone = await server.plain()
    await phone.wait_prompts(3)
    await phone.say(tone(800, hz=300), tail_ms=0)
    await phone.wait_prompts(5, timeout=20)  # no input: said again, worded for keys
    assert heard(phone)[3:5] == [("utter_no_input", "抱歉，没有收到您的按键。"),
                                 ("keypad_main", phone.prompts[2].text)]
    await phone.dtmf("*")  # not on the menu: not understood (a second strike)
    await phone.wait_closed(30)
    call, events = await server.logged(phone.end["call_id"])
    route = next(e for e in events if isinstance(e, Routed))
    assert (call["outcome"], route.reason) == ("escalated", "no_match")


async def until_heard(phone: Any, name: str, timeout: float = 30) -> None:
    """Wait until the last prompt the phone heard is ``name`` (a menu ends each turn)."""
    async def heard_it() -> None:
        while not (phone.prompts and heard(phone)[-1][0] == name):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(heard_it(), timeout)


async def test_a_lost_credit_card_by_keys_and_its_replay(server: Server, project: Any) -> None:
    """A key that carries a value (信用卡请按2) fills it as the word would; ``ivr replay``
    re-enters each choice as the request it named, so the route is reproduced."""
    phone = await server.plain()
    await until_heard(phone, "keypad_main")
    await phone.dtmf("4")  # 挂失银行卡
    await until_heard(phone, "keypad_card_type")
    await phone.dtmf("2")  # 信用卡
    await until_heard(phone, "utter_ask_verified")
    await phone.dtmf("123456#")
    await until_heard(phone, "keypad_yes_no")  # "…需要为您转接卡务专员办理补卡吗？"
    assert "尾号5678的信用卡" in phone.prompts[-2].text
    await phone.dtmf("2")  # 不需要
    await until_heard(phone, "keypad_more")
    await phone.dtmf("2")  # 结束通话
    await phone.wait_closed(30)
    call, events = await server.logged(phone.end["call_id"])
    assert (call["outcome"], call["intent"]) == ("self_service", "report_lost_card")
    card = next(e for e in events if isinstance(e, TurnTaken) and e.n == 2)
    assert card.input == {"dtmf": "2", "menu": "inform"}
    assert card.entities == [{"entity": "card_type", "value": "信用卡"}]

    replayer = Replayer(server.recorder.store, project.root,
                        {"zh": await asyncio.to_thread(zh_locale)})
    try:
        replay = await replayer.replay(call["call_id"])
    finally:
        replayer.close()
    assert replay["source"] == "transcript" and not replay["route_changed"]
    assert [t["input"] for t in replay["turns"]] == ["menu", "menu", "dtmf", "menu", "menu"]
    assert not any(t["differs"] for t in replay["turns"]), replay["turns"]
