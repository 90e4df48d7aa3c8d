"""The one engine factory: whole calls through the real model with the HTTP bank adapter
against a fake core-banking server (served, and failing over to an agent), the engine
built and speech models loaded in one place only, and a locale that needs no code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ivr.dialogue.bank_http import HttpBank
from ivr.dialogue.engine_factory import load_engine
from ivr.dialogue.handoff import skills_for
from ivr.dialogue.lockout import MemoryLockout
from ivr.dialogue.simulate import parse_script, run_script
from tests.conftest import KNOWN, UNKNOWN, prompts
from tests.fake_core_bank import FakeCoreBank

PIN = "123456"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
async def core_bank():
    async with FakeCoreBank() as server:
        yield server


@pytest.fixture(scope="module")
async def http_engine(project, model, core_bank):
    """The factory's engine, calling the bank over HTTP; it is awaited on the engine's
    dialogue thread, where the adapter makes its own session."""
    bank = HttpBank(core_bank.url, token="t0k", timeout_s=0.5, retries=1, backoff_s=0.01)
    engine = await load_engine(project, model, bank=bank, lockout=MemoryLockout())
    yield engine
    engine.close()


@pytest.fixture(autouse=True)
def healthy(core_bank):
    core_bank.status, core_bank.delay_s, core_bank.down, core_bank.slow = None, 0.0, (), ()
    core_bank.bank.reset()
    core_bank.requests.clear()


async def _call(engine, turns, caller=KNOWN):
    report = await run_script(parse_script({"caller": caller, "turns": turns}, Path("<t>")),
                              engine)
    return report.as_dict()


async def test_a_call_is_served_from_the_bank_over_http(http_engine, core_bank):
    result = await _call(http_engine, [{"say": "帮我查一下余额"}, {"dtmf": PIN + "#"}])
    assert "12345.67" in prompts(result) and result["outcome"] == "self_service"
    paths = [r["path"].removeprefix("/ivr/v1") for r in core_bank.requests]
    assert paths == ["/customers/by-phone", "/customers/C0001/verify-pin",
                     "/customers/C0001/balance"]
    assert all(r["headers"]["Authorization"] == "Bearer t0k" for r in core_bank.requests)


async def test_a_bank_down_during_verification_hands_the_caller_to_an_agent(http_engine,
                                                                            core_bank):
    core_bank.down = ("/verify-pin",)  # the caller is identified, then the bank fails
    result = await _call(http_engine, [{"say": "我的信用卡丢了"}, {"dtmf": PIN}])
    assert result["outcome"] == "escalated"
    assert (result["queue"], result["reason"]) == ("cards", "engine_error")
    assert "冻结" not in prompts(result) and "还可以再试" not in prompts(result)
    assert result["handoff"]["verification"]["failed_attempts"] == 0  # not the caller's fault
    assert sum(r["path"].endswith("/verify-pin") for r in core_bank.requests) == 1


async def test_a_bank_down_at_the_card_lookup_hands_the_caller_to_an_agent(http_engine,
                                                                          core_bank):
    core_bank.down = ("/by-card",)
    result = await _call(http_engine, [{"say": "查一下信用卡账单"}, {"dtmf": "6258880000005678#"}],
                         caller=UNKNOWN)
    assert (result["outcome"], result["queue"], result["reason"]) == (
        "escalated", "cards", "engine_error")
    assert "没有找到这张卡" not in prompts(result) and "3210.00" not in prompts(result)
    assert result["handoff"]["verification"]["failed_attempts"] == 0


async def test_a_bank_too_slow_on_the_account_query_escalates(http_engine, core_bank):
    core_bank.slow, core_bank.delay_s = ("/balance",), 2.0  # verified, then the bank stalls
    result = await _call(http_engine, [{"say": "帮我查一下余额"}, {"dtmf": PIN + "#"}])
    assert "12345.67" not in prompts(result)
    assert (result["outcome"], result["reason"]) == ("escalated", "engine_error")
    assert result["handoff"]["verification"]["verified"] is True
    assert sum(r["path"].endswith("/balance") for r in core_bank.requests) == 2  # one retry


async def test_a_bank_down_at_the_greeting_serves_an_unknown_caller(http_engine, core_bank):
    core_bank.status = 503
    result = await _call(http_engine, [{"say": "网点几点开门"}, {"say": "再见"}])
    assert result["outcome"] == "self_service"  # knowledge topics need no bank
    core_bank.status = None
    result = await _call(http_engine, [{"say": "查一下信用卡账单"}, {"dtmf": "6258880000005678#"},
                                       {"dtmf": PIN + "#"}], caller=UNKNOWN)
    assert "3210.00" in prompts(result)


def test_the_engine_and_the_demo_bank_are_built_in_one_place():
    """grep, as the issue asks: outside tests, only ivr/dialogue/engine_factory.py builds them."""
    built = re.compile(r"DialogueEngine\.load\(|DemoBank\(\)")
    found = sorted(str(p.relative_to(ROOT)) for folder in ("ivr", "bench")
                   for p in (ROOT / folder).rglob("*.py")
                   if built.search(p.read_text(encoding="utf-8")))
    assert found == ["ivr/dialogue/engine_factory.py"]


def test_speech_models_load_in_one_place():
    """grep: outside tests, only ivr/dialogue/engine_factory.py loads a speech model (``ivr serve``,
    ``ivr replay``, ``ivr models``); a decoder worker process loads its own copy of the
    models the factory loaded, from their paths."""
    found = sorted(str(p.relative_to(ROOT)) for folder in ("ivr", "bench")
                   for p in (ROOT / folder).rglob("*.py")
                   if "SpeechModel.load(" in p.read_text(encoding="utf-8"))
    assert found == ["ivr/dialogue/engine_factory.py", "ivr/voice/decoders.py"]


def test_a_new_locale_needs_no_code(tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "xx.yml").write_text("language: xx\n", encoding="utf-8")
    monkeypatch.setenv("IVR_HOME", str(tmp_path))
    script = parse_script({"locale": "xx", "turns": [{"say": "hi"}]}, Path("<t>"))
    assert script.locale == "xx"
    assert skills_for("xx", "mandarin") == ["xx"] and skills_for("zh", "mandarin") == []


def test_a_locales_models_are_listed_in_one_place_newest_first(tmp_path):
    import os

    from ivr.project import Project

    (tmp_path / "models").mkdir()
    for age, name in enumerate(["zh-new.tar.gz", "zh-old.tar.gz", "ko-any.tar.gz"]):
        path = tmp_path / "models" / name
        path.write_bytes(b"")
        os.utime(path, (1_000_000 - age * 100, 1_000_000 - age * 100))
    project = Project(tmp_path, "zh")
    assert [p.name for p in project.models()] == ["zh-new.tar.gz", "zh-old.tar.gz"]
    assert project.latest_model().name == "zh-new.tar.gz"
    assert Project(tmp_path, "xx").models() == []
