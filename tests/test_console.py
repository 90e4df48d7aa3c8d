"""The ops console end to end: real Korean calls over the plain WebSocket (espeak-ng
speech, the real Vosk and Rasa models) are logged; then a real browser (Debian's chromium,
driven by Playwright) logs in, finds and filters them, opens a timeline, plays the
recording, replays the call and reads the figures. The login, role and CSRF checks are
tested over plain HTTP. Screenshots of each page go to reports/console/.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import KNOWN, copy_project
from phones import PlainPhone, serving, speak

from ivr.calllog.recorder import CallLogSettings
from ivr.calllog.schema import calls
from ivr.calllog.timeline import turn_view
from ivr.console import CONSOLE, ConsoleContext
from ivr.console.auth import (
    ADMIN,
    COOKIE,
    CSRF_HEADER,
    TRAINER,
    check_password,
    hash_password,
)
from ivr.console.figures import figures
from ivr.console.routes import ROUTES
from ivr.console.throttle import login_attempts
from ivr.core.events import (
    BargedIn,
    CallEvent,
    MisrouteSignal,
    PromptPlayed,
    RecordingStarted,
    TurnTaken,
)
from ivr.project import Project
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import CALL_LOG
from ivr.trainer.promotion import write_live_pointer
from ivr.voice.asr import SpeechModel, VoskRecognizer
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

TOKEN = "console-test-token"
OPS_USER, OPS_PASSWORD = "olga", "correct horse 电池"
TRAINER_USER, TRAINER_PASSWORD = "tom", "staple-기억-42"
CHROMIUM = os.environ.get("IVR_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "reports" / "console"


@dataclass
class Console:
    url: str
    context: ConsoleContext
    voice_call: str  # 환율 then 아니요: self-served, with a recording
    agent_call: str  # 민원 (a complaint): escalated to the complaints queue
    altered_model: str  # a model file name that routes complaints to fraud


async def korean_calls(url: str) -> tuple[str, str]:
    """One call that self-serves and one that escalates, both spoken."""
    ws = url.replace("http", "ws") + "/ws"
    phone = await PlainPhone().connect(ws, TOKEN, caller=KNOWN, locale="ko")
    await phone.wait_prompts(2)
    await phone.say(speak("환율"))
    await phone.wait_prompts(4)
    await phone.say(speak("아니요"))
    await phone.wait_closed(30)
    assert phone.end and phone.end["outcome"] == "self_service", phone.end
    agent = await PlainPhone().connect(ws, TOKEN, caller=KNOWN, locale="ko")
    await agent.wait_prompts(2)
    await agent.say(speak("민원"))
    await agent.wait_closed(30)
    assert agent.end and agent.end["outcome"] == "escalated", agent.end
    return phone.end["call_id"], agent.end["call_id"]


@pytest.fixture(scope="module")
async def console(ko_engine, ko_model, altered_ko_model, project,
                  tmp_path_factory) -> AsyncIterator[Console]:
    """The engine's app (Korean only, real ASR) with its call log in a temp folder, two
    users, and two finished calls in the log. Its project (a copy) has the live Korean
    model and, newer, one that takes complaints for fraud reports, to replay against."""
    tmp = tmp_path_factory.mktemp("console")
    (tmp / "project").mkdir()
    root = copy_project(project.root, tmp / "project").root
    (root / "models").mkdir()
    for model in (ko_model, altered_ko_model):  # in this order: the altered one is newest
        shutil.copy(model, root / "models" / model.name)
    write_live_pointer(Project(root, "ko"), ko_model.name)
    locales = load_voice_locales(project.root / "locales")
    korean = SpeechModel.load("ko", locales["ko"].asr_model or "", end_of_speech_ms=500)
    services = VoiceServices(
        engines={"ko": ko_engine}, locales={"ko": locales["ko"]},
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda locale: VoskRecognizer(korean) if locale == "ko" else None,
        default_locale="ko", settings=VoiceSettings(no_input_ms=4000, playback_grace_s=0.5))
    settings = ServerSettings(
        audiosocket_port=-1, ws_token=TOKEN, default_locale="ko",
        call_log=CallLogSettings(url=f"sqlite:///{tmp / 'calls.sqlite3'}",
                                 recordings=tmp / "rec", instance="console-test"))
    app = build_app(settings, services, root)
    async with serving(app) as url:
        context = app[CONSOLE]
        context.accounts.set_user(OPS_USER, "ops", hash_password(OPS_PASSWORD))
        context.accounts.set_user(TRAINER_USER, TRAINER, hash_password(TRAINER_PASSWORD))
        voice_call, agent_call = await korean_calls(url)
        assert app[CALL_LOG].flush()
        yield Console(url, context, voice_call, agent_call, altered_ko_model.name)


def http_client() -> aiohttp.ClientSession:
    # unsafe=True: keep cookies from an IP-address host (127.0.0.1)
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(http: aiohttp.ClientSession, url: str, name: str, password: str) -> str:
    """Log in; returns the session's CSRF token."""
    resp = await http.post(f"{url}/console/api/login", json={"name": name, "password": password})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf"]


# --- passwords, login, roles, CSRF (plain HTTP) ---------------------------------------------
def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password("秘密"), hash_password("秘密")
    assert first != second and first.startswith("scrypt$")  # a fresh salt each time
    assert check_password("秘密", first) and check_password("秘密", second)
    assert not check_password("秘密 ", first)
    assert not check_password("秘密", "md5$whatever") and not check_password("秘密", "")


async def test_anonymous_requests_get_401_and_pages_go_to_the_login(console: Console) -> None:
    async with http_client() as http:
        for path in ("api/calls", "api/figures", "api/trends", "api/me", "api/review",
                     f"api/calls/{console.voice_call}", f"api/calls/{console.voice_call}/audio"):
            resp = await http.get(f"{console.url}/console/{path}")
            assert resp.status == 401, path
            assert (await resp.json())["error"]
        resp = await http.get(f"{console.url}/console/", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/console/login"
        resp = await http.get(f"{console.url}/console/login", headers={"Accept-Language": "en"})
        assert resp.status == 200 and "Sign in" in await resp.text()
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


async def test_wrong_passwords_are_refused_then_slowed_from_that_source(
        console: Console) -> None:
    """Past three wrong passwords for a name from one address, that address waits (1 s,
    doubling with each further failure) before it may try the name again, the right
    password included; other addresses and names are not held up (tests/test_access.py)."""
    name, store = "mallory", console.context.store
    console.context.accounts.set_user(name, "ops", hash_password("right"))
    async with http_client() as http:
        for password in ("wrong", "Right", ""):
            resp = await http.post(f"{console.url}/console/api/login",
                                   json={"name": name, "password": password})
            assert resp.status == 401
            assert not any(c.key == COOKIE for c in http.cookie_jar)
        # Three more from here just now (written directly: no timing to depend on): the
        # next try at the name from here waits 2 ** 3 = 8 s.
        with store.engine.begin() as db:
            db.execute(login_attempts.insert(), [
                {"source": "127.0.0.1", "name": name, "at": time.time()}] * 3)
        resp = await http.post(f"{console.url}/console/api/login",
                               json={"name": name, "password": "right "})
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 7
        resp = await http.post(f"{console.url}/console/api/login",
                               json={"name": "nobody", "password": "x"})
        assert resp.status == 401  # another name: the address has tries left
        # A form post (what another site could make a browser send) is not a login.
        resp = await http.post(f"{console.url}/console/api/login",
                               data={"name": name, "password": "right"})
        assert resp.status == 415
        resp = await http.post(f"{console.url}/console/api/login",  # still waiting
                               json={"name": name, "password": "right"})
        assert resp.status == 429
        with store.engine.begin() as db:  # an hour later: the failures are forgotten
            db.execute(login_attempts.update().values(at=login_attempts.c.at - 3601))
        resp = await http.post(f"{console.url}/console/api/login",
                               json={"name": name, "password": "right"})
        assert resp.status == 200 and any(c.key == COOKIE for c in http.cookie_jar)


async def test_the_review_queue_is_for_trainers_only(console: Console) -> None:
    async with http_client() as trainer, http_client() as ops:
        await login(trainer, console.url, TRAINER_USER, TRAINER_PASSWORD)
        await login(ops, console.url, OPS_USER, OPS_PASSWORD)
        resp = await trainer.get(f"{console.url}/console/api/review?locale=ko")
        assert resp.status == 200 and (await resp.json())["clusters"] == []  # none misrouted
        resp = await ops.get(f"{console.url}/console/api/review?locale=ko")
        assert resp.status == 403
        for http in (trainer, ops):  # both read calls, figures and trends
            assert (await http.get(f"{console.url}/console/api/calls")).status == 200
            assert (await http.get(f"{console.url}/console/api/figures")).status == 200
            resp = await http.get(f"{console.url}/console/api/trends?locale=ko&days=7")
            assert resp.status == 200 and (await resp.json())["bucket"] == "day"
    # Every route is in the one role table, and only trainers (and admins) reach the
    # review queue.
    review = [r for r in ROUTES if r.path == "/console/api/review"]
    assert [r.roles for r in review] == [frozenset({TRAINER, ADMIN})]


async def test_state_changes_need_the_sessions_csrf_token(console: Console) -> None:
    async with http_client() as http:
        csrf = await login(http, console.url, OPS_USER, OPS_PASSWORD)
        replay = f"{console.url}/console/api/calls/{console.agent_call}/replay"
        for headers in ({}, {CSRF_HEADER: "forged"}):
            resp = await http.post(replay, json={}, headers=headers)
            assert resp.status == 403 and CSRF_HEADER in (await resp.json())["error"]
            resp = await http.post(f"{console.url}/console/api/logout", headers=headers)
            assert resp.status == 403
        resp = await http.post(replay, json={"model": "../../etc/passwd"},
                               headers={CSRF_HEADER: csrf})
        assert resp.status == 400  # only the replayer's own model files, by name
        resp = await http.post(f"{console.url}/console/api/logout", headers={CSRF_HEADER: csrf})
        assert resp.status == 200
        assert (await http.get(f"{console.url}/console/api/me")).status == 401


async def test_recordings_are_served_only_from_the_recordings_folder(console: Console) -> None:
    store = console.context.store
    store.write([(1, RecordingStarted(call_id="tampered-call", recording="../calls.sqlite3"))],
                "elsewhere")
    async with http_client() as http:
        await login(http, console.url, OPS_USER, OPS_PASSWORD)
        resp = await http.get(f"{console.url}/console/api/calls/tampered-call/audio")
        assert resp.status == 404
        resp = await http.get(f"{console.url}/console/api/calls/{console.voice_call}/audio",
                              headers={"Range": "bytes=44-"})  # a seek: audited, with its range
        assert resp.status == 206 and resp.headers["Content-Type"] == "audio/wav"
        assert (await http.get(f"{console.url}/console/api/calls/no-such-call")).status == 404
    with store.engine.begin() as db:  # the tampered row would count as a live call
        db.execute(calls.delete().where(calls.c.call_id == "tampered-call"))
    audit = console.context.accounts.audit_log(console.voice_call)
    listens = [a for a in audit if a["action"] == "listen"]
    assert [(a["user"], a["detail"]) for a in listens] == [(OPS_USER, "bytes=44-")]


async def test_figures_count_the_calls(console: Console) -> None:
    async with http_client() as http:
        await login(http, console.url, OPS_USER, OPS_PASSWORD)
        shown = await (await http.get(f"{console.url}/console/api/figures?hours=1")).json()
    assert shown["live_calls"] == 0 and shown["calls"] >= 2
    assert shown["outcome"]["self_service"] >= 1 and shown["outcome"]["escalated"] >= 1
    assert shown["escalations_by_queue"].get("complaints", 0) >= 1
    assert 0 < shown["containment"] < 1


async def test_the_timeline_api_gives_each_turn_as_heard_and_understood(
        console: Console) -> None:
    async with http_client() as http:
        await login(http, console.url, OPS_USER, OPS_PASSWORD)
        resp = await http.get(f"{console.url}/console/api/calls/{console.voice_call[:8]}")
        assert resp.status == 200
        assert "환율" in await resp.text()  # UTF-8 as is, not \u escapes
        data = await resp.json()
    assert data["call"]["call_id"] == console.voice_call
    # Every logged event as the log holds it: seq, at, kind and data.
    assert all(list(e) == ["seq", "at", "kind", "data"] for e in data["events"])
    assert [e["seq"] for e in data["events"]] == list(range(1, len(data["events"]) + 1))
    said = [e["data"]["input"] for e in data["events"] if e["kind"] == "turn"]
    assert said[0] == {"say": "환율"} and data["events"][-1]["kind"] == "end"
    greeting, rates, goodbye = data["turns"]
    assert greeting["n"] == 0 and greeting["prompts"][-1]["name"] == "utter_greet"
    assert rates["input"] == {"say": "환율"} and rates["intent"] == "exchange_rate"
    assert rates["asr"]["raw"] == "환율" and rates["asr"]["audio_ms"][1] > 0
    assert rates["intent_ranking"][0]["name"] == "exchange_rate"
    assert [p["name"] for p in rates["prompts"]] == ["utter_exchange_rates",
                                                     "utter_anything_else"]
    assert not any(p["barged"] for p in rates["prompts"])
    assert goodbye["intent"] == "deny" and "call_ended" in goodbye["slots"]
    # The access log ends with this very view (a test before may have listened).
    assert [(a["user"], a["action"]) for a in data["audit"]][-1] == (OPS_USER, "view")
    assert [a["action"] for a in data["audit"]].count("view") == 1


def test_the_turn_view_marks_prompts_the_caller_barged_in_on() -> None:
    cid = "barged-call"
    events: list[CallEvent] = [
        PromptPlayed(call_id=cid, at=10.0, seq=1, name="utter_greet", text="您好",
                     mark="utter_greet-1"),
        BargedIn(call_id=cid, at=11.0, seq=2, marks=["utter_greet-1"]),
        TurnTaken(call_id=cid, at=12.5, seq=3, n=1, input={"say": "我说的是信用卡"},
                  intent="credit_card_bill", prompts=["好的"], correction_of="check_balance"),
        MisrouteSignal(call_id=cid, at=12.6, seq=4, signal="correction", turn=1),
        PromptPlayed(call_id=cid, at=12.7, seq=5, name="utter_ok", text="好的",
                     mark="utter_ok-2"),
    ]
    start, turn = turn_view(events)
    assert start["prompts"][0]["barged"] is True
    assert turn["offset_s"] == 2.5 and turn["signals"] == ["correction"]
    assert (turn["n"], turn["intent"], turn["correction_of"]) == (1, "credit_card_bill",
                                                                  "check_balance")
    assert turn["prompts"] == [{"name": "utter_ok", "text": "好的", "mark": "utter_ok-2",
                                "barged": False}]
    # A call without audio has no prompt events: the dialogue's texts stand in.
    _, text_only = turn_view(events[2:4])
    assert text_only["prompts"] == [{"text": "好的", "barged": False}]


def test_containment_is_over_ended_calls_only() -> None:
    counts = {"status": {"live": 1, "complete": 3, "incomplete": 1},
              "outcome": {"self_service": 2, "escalated": 1, "None": 2},
              "escalations_by_queue": {"cards": 1}, "escalations_by_reason": {"intent": 1}}
    f = figures(counts, {"correction": 2, "no_match": 1}, live=1, hours=24, since=0.0)
    assert (f["calls"], f["ended"], f["containment"]) == (5, 4, 0.5)
    assert f["outcome"] == {"self_service": 2, "escalated": 1}  # no outcome yet: not shown
    assert f["misroute_signals"] == {"correction": 2, "no_match": 1}
    assert figures({"status": {}, "outcome": {}}, {}, 0, 1, 0.0)["containment"] is None


def test_docs_list_every_route_with_its_roles() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "console.md").read_text()
    for route in ROUTES:
        assert f"`{route.method} {route.path}`" in doc, route.path


# --- the page in a real browser ----------------------------------------------------------
class NoBrowser(Exception):
    """Chromium is missing or does not start."""


async def in_browser(script: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``script(browser)`` with Debian's chromium, headless (Playwright's own browser
    download is not used). It runs on its own event loop in a thread: Playwright starts
    its driver as a subprocess, which the tests' loop cannot do under the event-loop
    policy Rasa's dependencies install (see ivr/voice/tts.py); the engine's server stays
    on the tests' loop meanwhile, answering the browser."""

    async def run() -> None:
        from playwright.async_api import Error, async_playwright

        if not shutil.which(CHROMIUM):
            raise NoBrowser(f"no chromium at {CHROMIUM} (apt-get install chromium, "
                            "or set IVR_CHROMIUM)")
        async with async_playwright() as pw:
            try:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True,
                    args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required",
                          "--mute-audio"])
            except Error as e:
                raise NoBrowser(f"chromium at {CHROMIUM} did not start: "
                                f"{str(e).splitlines()[0]}") from e
            try:
                await script(browser)
            finally:
                await browser.close()

    try:
        await asyncio.to_thread(asyncio.run, run())
    except NoBrowser as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))


async def sign_in(page: Any, url: str, name: str, password: str) -> None:
    await page.goto(f"{url}/console/login")
    await page.fill("#name", name)
    await page.fill("#password", password)
    await page.click("#login-submit")


async def test_ops_console_in_a_real_browser(console: Console) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    accounts = console.context.accounts

    async def script(browser: Any) -> None:
        # English: these checks read the English texts (whatever the machine's locale).
        page = await browser.new_page(viewport={"width": 1360, "height": 900}, locale="en-US")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400
                else None)

        # Anonymous: the console sends the browser to the login page; a wrong password
        # is refused there.
        await page.goto(f"{console.url}/console/")
        assert page.url.endswith("/console/login")
        await sign_in(page, console.url, OPS_USER, "not the password")
        await page.wait_for_selector("#login-error:not([hidden])")
        assert "wrong name or password" in await page.inner_text("#login-error")
        await page.screenshot(path=SHOTS / "login.png")
        errors.clear()  # the browser logs the refused login's 401: expected
        await sign_in(page, console.url, OPS_USER, OPS_PASSWORD)

        # The calls list, then filtered by outcome.
        await page.wait_for_selector(f'tr[data-call-id="{console.voice_call}"]')
        assert await page.inner_text("#user-role") == "ops"
        assert await page.is_hidden('a[data-view="review"]')
        assert await page.locator(f'tr[data-call-id="{console.agent_call}"]').count() == 1
        await page.screenshot(path=SHOTS / "calls.png", full_page=True)
        rows = page.locator("#calls-table tbody tr[data-call-id]")
        await page.select_option("#filter-outcome", "escalated")
        await page.wait_for_function("() => location.hash.includes('outcome=escalated')")
        await page.wait_for_selector(f'tr[data-call-id="{console.agent_call}"]')
        assert await rows.count() == 1
        await page.select_option("#filter-outcome", "self_service")
        await page.wait_for_selector(f'tr[data-call-id="{console.voice_call}"]')
        assert await rows.count() == 1

        # The timeline: the caller's words as heard, the NLU result, the engine's answers.
        await page.click(f'tr[data-call-id="{console.voice_call}"]')
        await page.wait_for_selector("#turns li.turn[data-turn='2']")
        first = await page.inner_text("#turns li.turn[data-turn='1']")
        assert "환율" in first and "exchange_rate" in first and "ASR" in first
        assert "달러" in first  # the rates the engine read out
        assert await page.locator("#turns li.turn[data-turn='0'] .bot").count() >= 1

        # The recording plays in the browser, and listening is audited.
        audio = page.locator("#recording")
        await audio.evaluate("a => a.play()")
        await page.wait_for_function(
            "() => { const a = document.querySelector('#recording');"
            " return a.error === null && (a.currentTime > 0.5 || a.ended); }", timeout=15000)
        assert await audio.evaluate("a => a.error") is None
        assert await audio.evaluate("a => a.duration") > 2
        await audio.evaluate("a => a.pause()")
        listens = [a for a in accounts.audit_log(console.voice_call) if a["action"] == "listen"]
        assert listens and listens[0]["user"] == OPS_USER
        await page.screenshot(path=SHOTS / "call.png", full_page=True)

        # Replay against the latest model: the diff renders, turn by turn.
        await page.click("#replay-run")
        await page.wait_for_selector("#replay-summary", timeout=120_000)
        assert await page.locator("#replay-turns tbody tr").count() >= 2
        summary = await page.inner_text("#replay-summary")
        assert "self_service" in summary and "exchange_rate" in summary
        assert "replay" in [a["action"] for a in accounts.audit_log(console.voice_call)]

        # The complaint, replayed on the model that takes complaints for fraud: the diff
        # shows the route change and the turn that differs.
        await page.goto(f"{console.url}/console/#/call/{console.agent_call}")
        await page.wait_for_selector("#turns li.turn[data-turn='1']")
        await page.select_option("#replay-model", console.altered_model)
        await page.click("#replay-run")
        await page.wait_for_selector("#replay-summary", timeout=120_000)
        shown = await page.inner_text("#replay")
        assert "route changed" in shown and "1 turn(s) differ" in shown
        assert "complaints" in shown and "fraud" in shown
        assert await page.locator("#replay-turns tbody tr.changed").count() == 1
        await page.locator("#replay").screenshot(path=SHOTS / "replay.png")

        # Figures: counts and bar charts drawn as inline SVG.
        await page.click('a[data-view="figures"]')
        await page.wait_for_selector('figure[data-chart="outcome"] svg rect')
        assert int(await page.inner_text("#kpi-calls .kpi-value")) >= 2
        assert await page.inner_text("#kpi-live .kpi-value") == "0"
        assert "%" in await page.inner_text("#kpi-containment .kpi-value")
        assert await page.locator('figure[data-chart="queue"] svg text',
                                  has_text="complaints").count() == 1
        await page.screenshot(path=SHOTS / "figures.png", full_page=True)

        # Logging out ends the session.
        await page.click("#logout")
        await page.wait_for_url("**/console/login")
        assert errors == []

    await in_browser(script)


async def test_trainers_see_the_review_tab(console: Console) -> None:
    async def script(browser: Any) -> None:
        page = await browser.new_page(locale="en-US")
        await sign_in(page, console.url, TRAINER_USER, TRAINER_PASSWORD)
        await page.wait_for_selector('a[data-view="review"]:not([hidden])')
        await page.click('a[data-view="review"]')
        await page.wait_for_selector("text=Nothing to review yet.")

    await in_browser(script)
