"""The console for a Chinese bank's staff (issue 16 items 5-7): the page in zh-CN and English
(one catalogue per language, the names' Chinese labels with the raw name on hover, a switch
that remembers the choice), one time zone (the bank's: ``IVR_TIMEZONE``, default
Asia/Shanghai) in the console, the CLI, trends and the VOC report, and the contact-centre
figures (transfer rate, handle time, calls by hour, containment by intent, abandonment,
repeat callers; filters; test calls left out; CSV).

The arithmetic runs on a small set of logged calls on both stores; the browser test uses
the real app with no model loaded (as tests/test_access.py), so it takes seconds.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_project
from phones import serving
from test_access import StubReplayer
from test_console import (
    OPS_PASSWORD,
    OPS_USER,
    SHOTS,
    TRAINER_PASSWORD,
    TRAINER_USER,
    http_client,
    in_browser,
    login,
    sign_in,
)

from ivr.calllog.recorder import CallLogSettings
from ivr.calllog.store import CallStore
from ivr.console import CONSOLE, ConsoleContext, i18n, kpi
from ivr.console.auth import hash_password
from ivr.core import zone
from ivr.core.events import CallEnded, CallEvent, CallStarted, MisrouteSignal
from ivr.project import Project
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.trainer.trends import trends
from ivr.trainer.voc import Month, voice_of_customer
from ivr.voice.session import VoiceServices
from ivr.voice.tts import EspeakTts, PromptAudio

STATIC = Path(__file__).resolve().parent.parent / "ivr" / "console" / "static"
HOUR = 3600
A, B, C = "+8613800000001", "+8613900000009", "+8613700000007"
# 2026-12-02 23:30 UTC: 2026-12-03 07:30 in Shanghai.
LATE = datetime(2026, 12, 2, 23, 30, tzinfo=timezone.utc).timestamp()


def log(store: CallStore, call_id: str, at: float, *, transport: str = "websocket",
        caller: str | None = A, locale: str = "zh", outcome: str | None = "self_service",
        seconds: float = 60, intent: str | None = None, queue: str | None = None,
        reason: str | None = None, signal: str | None = None) -> None:
    """A call in the log, started at ``at``; ``outcome=None``: still live."""
    events: list[CallEvent] = [CallStarted(call_id=call_id, at=at, transport=transport,
                                           caller=caller, locale=locale)]
    if signal:
        events.append(MisrouteSignal(call_id=call_id, at=at + 1, signal=signal))
    if outcome:
        events.append(CallEnded(call_id=call_id, at=at + seconds, transport=transport,
                                caller=caller, locale=locale, outcome=outcome, intent=intent,
                                queue=queue, reason=reason))
    # The start alone first, as the recorder writes it: a call's row takes its start
    # from the first batch that names it.
    store.write([(1, events[0])], "i18n-test")
    if events[1:]:
        store.write(list(enumerate(events[1:], 2)), "i18n-test")


def day_of_calls(store: CallStore, now: float) -> None:
    """The day before ``now``: two calls of A two hours apart (the second a repeat, lost
    card to the cards queue), a hang-up of B five hours after B's call of the day before
    (a repeat too), a live call, a simulated and a chat call (test calls)."""
    log(store, "earlier-b", now - 26 * HOUR, caller=B, seconds=40, intent="check_balance")
    log(store, "a1", now - 6 * HOUR, seconds=60, intent="check_balance")
    log(store, "a2", now - 4 * HOUR, transport="twilio", outcome="escalated", seconds=120,
        intent="report_lost_card", queue="cards", reason="intent", signal="correction")
    log(store, "b1", now - 25 * HOUR + 20 * HOUR, caller=B, locale="ko",
        transport="audiosocket", outcome="hangup", seconds=30, signal="no_match")
    log(store, "live", now - 60, caller=C, outcome=None)
    log(store, "sim", now - 2 * HOUR, transport="simulate", caller=A, intent="check_balance")
    log(store, "chat", now - 1 * HOUR, transport="chat", caller=None, outcome="escalated",
        intent="complaint", queue="complaints", reason="caller_request")


# --- the figures' arithmetic (both stores) ----------------------------------------------------
def test_contact_centre_figures_on_a_day_of_calls(store: CallStore) -> None:
    now = time.time()
    day_of_calls(store, now)
    since = now - 24 * HOUR
    found = kpi.read(store, since, kpi.Scope())
    f = found["figures"]
    # Test calls (simulate, chat) are out; the live call counts as a call, not as ended.
    assert found["counts"]["status"] == {"complete": 3, "live": 1}
    assert f["transfer_rate"] == round(1 / 3, 4)
    assert (f["abandoned"], f["abandonment"]) == (1, round(1 / 3, 4))
    assert f["average_handle_s"] == round((60 + 120 + 30) / 3, 1)
    assert sum(f["calls_by_hour"]) == 4 and len(f["calls_by_hour"]) == 24
    assert f["containment_by_intent"] == {
        "(none)": {"calls": 1, "self_service": 0, "escalated": 0, "abandoned": 1,
                   "containment": 0.0},
        "check_balance": {"calls": 1, "self_service": 1, "escalated": 0, "abandoned": 0,
                          "containment": 1.0},
        "report_lost_card": {"calls": 1, "self_service": 0, "escalated": 1, "abandoned": 0,
                             "containment": 0.0}}
    # a2 (A's second call) and b1 (B called the day before the period, 5 h earlier).
    assert (f["repeat_calls"], f["repeat_callers"], f["repeat_rate"]) == (2, 2, 0.5)
    assert found["signals"] == {"correction": 1, "no_match": 1}
    assert found["options"] == {"locale": ["ko", "zh"],
                                "transport": ["audiosocket", "chat", "simulate", "twilio",
                                              "websocket"],
                                "queue": ["cards", "complaints"]}

    everything = kpi.read(store, since, kpi.Scope(include_test=True))
    assert sum(everything["counts"]["status"].values()) == 6
    assert everything["figures"]["containment_by_intent"]["check_balance"]["calls"] == 2
    # sim: A again within 24 h of a2, so a repeat when test calls count.
    assert everything["figures"]["repeat_calls"] == 3

    twilio = kpi.read(store, since, kpi.Scope(transport="twilio"))
    assert twilio["counts"]["escalations_by_queue"] == {"cards": 1}
    assert twilio["figures"]["repeat_calls"] == 0  # A's other call is not in scope
    korean = kpi.read(store, since, kpi.Scope(locale="ko"))
    assert korean["counts"]["outcome"] == {"hangup": 1} and korean["signals"] == {"no_match": 1}
    cards = kpi.read(store, since, kpi.Scope(queue="cards"))
    assert cards["figures"]["transfer_rate"] == 1.0


def test_calls_by_hour_are_the_banks_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [{"call_id": "x", "started_at": LATE, "ended_at": LATE + 10, "status": "complete",
              "outcome": "self_service", "caller": None}]
    assert kpi.contact_centre(calls)["calls_by_hour"][7] == 1  # 07:30 in Shanghai
    monkeypatch.setenv("IVR_TIMEZONE", "UTC")
    assert kpi.contact_centre(calls)["calls_by_hour"][23] == 1
    assert kpi.contact_centre([])["transfer_rate"] is None


# --- one time zone ------------------------------------------------------------------------------
def test_times_are_printed_in_the_banks_zone_with_its_offset(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_TIMEZONE", raising=False)
    assert zone.stamp(LATE) == "2026-12-03 07:30:00 +08:00"
    assert zone.stamp(LATE, seconds=False) == "2026-12-03 07:30 +08:00"
    assert str(zone.day(LATE)) == "2026-12-03"
    monkeypatch.setenv("IVR_TIMEZONE", "America/New_York")
    assert zone.stamp(LATE) == "2026-12-02 18:30:00 -05:00"
    monkeypatch.setenv("IVR_TIMEZONE", "Mars/Olympus")
    with pytest.raises(Exception, match="IVR_TIMEZONE"):
        zone.stamp(LATE)


def test_a_call_at_2330_utc_is_the_next_day_in_shanghai(
        store: CallStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_TIMEZONE", raising=False)
    log(store, "late", LATE)
    # Trends: the call is on 3 December, the bank's day.
    shown = trends(store, "zh", LATE - 2 * 86400, LATE + 86400)
    assert shown["timezone"] == "Asia/Shanghai"
    assert dict(zip(shown["periods"], shown["calls"], strict=True)) == {
        "2026-12-01": 0, "2026-12-02": 0, "2026-12-03": 1, "2026-12-04": 0}
    # The VOC month: a call at 23:30 UTC on 30 November is a December call in Shanghai.
    november_end = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc).timestamp()
    log(store, "month-end", november_end)
    december = Month.parse("2026-12")
    assert december.start == datetime(2026, 11, 30, 16, tzinfo=timezone.utc).timestamp()
    assert [r["calls"] for r in voice_of_customer(store, december) if r["intent"] == "all"] == [2]
    assert [r["calls"] for r in voice_of_customer(store, Month.parse("2026-11"))
            if r["intent"] == "all"] == [0]


# --- the catalogues -----------------------------------------------------------------------------
def test_both_catalogues_have_every_message_the_pages_use() -> None:
    zh, en = i18n.catalogue("zh-CN"), i18n.catalogue("en")
    assert set(zh["messages"]) == set(en["messages"])
    used = set()
    for name in ("app.js", "login.js", "i18n.js"):
        used |= set(re.findall(r'\bt\("([\w.-]+)"', (STATIC / name).read_text()))
    for name in ("index.html", "login.html"):
        used |= set(re.findall(r"\{\{([\w.-]+)\}\}", (STATIC / name).read_text())) - {
            "lang", "data"}
    assert used and not used - set(en["messages"]), used - set(en["messages"])
    # No text left in the pages themselves: every element's text is a placeholder.
    for name in ("index.html", "login.html"):
        texts = re.findall(r">([^<>{}]*[A-Za-z\u4e00-\u9fff][^<>{}]*)<",
                           (STATIC / name).read_text())
        assert [t for t in texts if t.strip() and "{" not in t] == [], name
    # Reasons, outcomes and statuses have Chinese labels; intents and queues come from
    # what callers hear (knowledge/zh.yml).
    labels = i18n.labels("zh-CN")
    assert labels["queue"]["cards"] == "卡务专员"
    assert labels["intent"]["report_lost_card"] == "挂失银行卡"
    for reason in ("no_match", "no_input", "verification_failed", "verification_locked",
                   "caller_request", "intent", "engine_error"):
        assert re.search(r"[\u4e00-\u9fff]", labels["reason"][reason]), reason


def test_the_language_is_the_switchs_else_the_browsers() -> None:
    assert i18n.negotiate(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert i18n.negotiate(None, "zh-TW") == "zh-CN"
    assert i18n.negotiate(None, "en-US,en;q=0.9,zh;q=0.5") == "en"
    assert i18n.negotiate(None, "fr, en;q=0.2, zh;q=0.8") == "zh-CN"
    assert i18n.negotiate(None, None) == "zh-CN"
    assert i18n.negotiate("en", "zh-CN") == "en"
    assert i18n.negotiate("xx", "en") == "en"  # an unknown cookie is ignored


# --- the app: pages over HTTP, then both languages in Chromium ---------------------------------
@dataclass
class Staff:
    url: str
    context: ConsoleContext
    now: float


@pytest.fixture(scope="module")
async def staff(project: Project, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Staff]:
    """The app (no engines, nothing to load) on a copy of the project, an ops user and a
    day of calls."""
    tmp = tmp_path_factory.mktemp("i18n")
    (tmp / "project").mkdir()
    root = copy_project(project.root, tmp / "project").root
    services = VoiceServices(engines={}, locales={}, prompts=PromptAudio(EspeakTts()),
                             recognizer_for=lambda locale: None, default_locale="zh")
    settings = ServerSettings(
        audiosocket_port=-1, ws_token="i18n-token", default_locale="zh",
        call_log=CallLogSettings(url=f"sqlite:///{tmp / 'calls.sqlite3'}",
                                 recordings=tmp / "rec", instance="i18n-test"))
    app = build_app(settings, services, root)
    async with serving(app) as url:
        context = app[CONSOLE]
        context.replayer = StubReplayer()  # type: ignore[assignment]
        context.accounts.set_user(OPS_USER, "ops", hash_password(OPS_PASSWORD))
        context.accounts.set_user(TRAINER_USER, "trainer", hash_password(TRAINER_PASSWORD))
        now = time.time()
        day_of_calls(context.store, now)
        yield Staff(url, context, now)


async def test_the_login_page_is_in_the_browsers_language(staff: Staff) -> None:
    async with http_client() as http:
        zh = await http.get(f"{staff.url}/console/login",
                            headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        text = await zh.text()
        assert zh.status == 200 and "登录" in text and "Sign in" not in text
        assert '<html lang="zh-CN">' in text and zh.headers["Content-Language"] == "zh-CN"
        assert "default-src 'self'" in zh.headers["Content-Security-Policy"]
        en = await http.get(f"{staff.url}/console/login", headers={"Accept-Language": "en"})
        assert "Sign in" in await en.text()
        # The switch's cookie wins over the browser.
        chosen = await http.get(f"{staff.url}/console/login", cookies={i18n.COOKIE: "en"},
                                headers={"Accept-Language": "zh-CN"})
        assert "Sign in" in await chosen.text()
        await login(http, staff.url, OPS_USER, OPS_PASSWORD)
        f = await (await http.get(f"{staff.url}/console/api/figures?hours=24")).json()
        assert (f["calls"], f["transfer_rate"], f["repeat_calls"]) == (4, round(1 / 3, 4), 2)
        assert f["timezone"] == "Asia/Shanghai"
        f = await (await http.get(f"{staff.url}/console/api/figures?hours=24&test=1"
                                  "&transport=chat")).json()
        assert f["calls"] == 1 and f["escalations_by_reason"] == {"caller_request": 1}


async def test_the_console_in_chinese_and_in_english(staff: Staff) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    a1 = staff.now - 6 * HOUR
    a1_shown = zone.stamp(a1)[:19]  # Shanghai's wall clock, whatever the browser's zone

    async def script(browser: Any) -> None:
        # A zh-CN browser in New York: the page speaks Chinese and shows Shanghai's times.
        context = await browser.new_context(locale="zh-CN", timezone_id="America/New_York",
                                            viewport={"width": 1360, "height": 900},
                                            accept_downloads=True)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(f"{staff.url}/console/login")
        assert await page.inner_text("#login-submit") == "登录"
        await sign_in(page, staff.url, OPS_USER, "not the password")
        await page.wait_for_selector("#login-error:not([hidden])")
        assert await page.inner_text("#login-error") == "用户名或密码错误"
        await page.screenshot(path=SHOTS / "login-zh.png")
        errors.clear()  # the refused login's 401
        await sign_in(page, staff.url, OPS_USER, OPS_PASSWORD)

        # Calls: Chinese headings, labels with the raw name on hover, the bank's times.
        await page.wait_for_selector('tr[data-call-id="a2"]')
        assert "Asia/Shanghai" in await page.inner_text("#timezone")
        assert "UTC+08:00" in await page.inner_text("#timezone")
        assert await page.inner_text("#user-role") == "运营"
        head = await page.inner_text("#calls-table thead")
        assert "开始时间" in head and "队列" in head
        queue = page.locator('tr[data-call-id="a2"] span[data-name="cards"]')
        assert await queue.inner_text() == "卡务专员"
        assert await queue.get_attribute("title") == "cards"
        intent = page.locator('tr[data-call-id="a2"] span[data-name="report_lost_card"]')
        assert await intent.inner_text() == "挂失银行卡"
        reason = page.locator('tr[data-call-id="a2"] span[data-name="intent"][title="intent"]')
        assert await reason.inner_text() == "按业务转人工"
        assert a1_shown in await page.inner_text('tr[data-call-id="a1"]')
        await page.screenshot(path=SHOTS / "calls-zh.png", full_page=True)

        # Figures: the contact-centre figures, test calls out until the toggle.
        await page.click('a[data-view="figures"]')
        await page.wait_for_selector('figure[data-chart="hours"] svg')
        assert await page.inner_text("#kpi-calls .kpi-value") == "4"
        assert await page.inner_text("#kpi-transfer .kpi-label") == "转人工率"
        assert await page.inner_text("#kpi-transfer .kpi-value") == "33.3%"
        assert await page.inner_text("#kpi-abandonment .kpi-value") == "33.3%"
        assert await page.inner_text("#kpi-aht .kpi-value") == "1:10"
        assert await page.inner_text("#kpi-repeat .kpi-value") == "2"
        assert await page.locator('figure[data-chart="hours"] g.column').count() == 24
        assert "Asia/Shanghai" in await page.inner_text('figure[data-chart="hours"] figcaption')
        label = page.locator('figure[data-chart="reason"] text[data-name="intent"]')
        assert await label.text_content() == "按业务转人工"
        row = page.locator('#containment-by-intent tr[data-intent="report_lost_card"]')
        assert "挂失银行卡" in await row.inner_text()
        await page.screenshot(path=SHOTS / "figures-zh.png", full_page=True)
        async with page.expect_download() as download:
            await page.click('button[data-csv="containment-by-intent"]')
        saved = await (await download.value).path()
        table = list(csv.reader(io.StringIO(Path(saved).read_text(encoding="utf-8-sig"))))
        assert table[0][:2] == ["意图", "通话数"]
        assert ["挂失银行卡", "1", "0", "1", "0", "0.0%"] in table
        await page.check("#figures-test")
        await page.wait_for_function("() => location.hash.includes('test=1')")
        await page.wait_for_function(
            "() => document.querySelector('#kpi-calls .kpi-value')?.textContent === '6'")
        await page.select_option("#filter-transport", "twilio")
        await page.wait_for_function(
            "() => document.querySelector('#kpi-calls .kpi-value')?.textContent === '1'")
        assert await page.locator('figure[data-chart="queue"] text[data-name="cards"]'
                                  ).text_content() == "卡务专员"
        await page.click('a[data-view="trends"]')
        await page.wait_for_selector('figure[data-chart="rates"]')
        assert "Asia/Shanghai" in await page.inner_text("#view .panel-head")
        await page.goto(f"{staff.url}/console/#/call/a2")
        await page.wait_for_selector("#call-summary")
        assert "挂失银行卡" in await page.inner_text("#call-summary")
        await page.screenshot(path=SHOTS / "call-zh.png", full_page=True)
        assert await page.evaluate("() => [...missingMessages]") == []

        # The switch: English, remembered (the cookie) across pages and the login.
        async with page.expect_navigation():
            await page.select_option("#lang-switch", "en")
        # The reloaded page, in English, is on the same call; then on to the figures.
        await page.wait_for_selector('html[lang="en"] #call-summary')
        await page.click('a[data-view="figures"]')
        await page.wait_for_selector('figure[data-chart="hours"] svg')
        assert await page.inner_text("#kpi-transfer .kpi-label") == "Transfer rate"
        assert await page.inner_text('a[data-view="figures"]') == "Figures"
        # English shows the engine's own names.
        assert await page.locator('figure[data-chart="reason"] text[data-name="intent"]'
                                  ).text_content() == "intent"
        await page.screenshot(path=SHOTS / "figures-en.png", full_page=True)
        for view, shown in (("calls", "#calls-table"), ("trends", '[data-chart="rates"]'),
                            ("call/a2", "#call-summary")):
            await page.goto(f"{staff.url}/console/#/{view}")
            await page.wait_for_selector(shown)
        assert await page.evaluate("() => [...missingMessages]") == []
        await page.click("#logout")
        await page.wait_for_url("**/console/login")
        assert await page.inner_text("#login-submit") == "Sign in"
        cookies = {c["name"]: c["value"] for c in await context.cookies()}
        assert cookies[i18n.COOKIE] == "en"
        assert errors == []
        await context.close()

        # The trainers' pages in Chinese too.
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1360,
                                                                      "height": 900})
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(page, staff.url, TRAINER_USER, TRAINER_PASSWORD)
        await page.wait_for_selector('a[data-view="review"]:not([hidden])')
        await page.click('a[data-view="review"]')
        await page.wait_for_selector("#clusters")
        assert await page.inner_text("#view h1") == "复核"
        await page.click('a[data-view="model"]')
        await page.wait_for_selector("#live-models")
        assert await page.inner_text("#view h1") == "模型"
        assert await page.inner_text("#train") == "训练"
        await page.screenshot(path=SHOTS / "model-zh.png", full_page=True)
        assert await page.evaluate("() => [...missingMessages]") == []
        assert errors == []
        await context.close()

    await in_browser(script)


def test_the_data_block_cannot_be_closed_by_a_label() -> None:
    page = i18n.render("index.html", "zh-CN")
    block = re.search(r'<script type="application/json" id="i18n-data">(.*?)</script>', page,
                      re.S)
    assert block and json.loads(block.group(1))["timezone"]["name"] == zone.zone_name()
    assert "</" not in block.group(1)
