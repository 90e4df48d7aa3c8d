"""Labelling in the console (issue 16 item 9): no default label on a cluster the model did
not understand, a labelled cluster leaves the page, a trainer proposes a new intent (a
candidate change another trainer reviews, never the live domain), and no CLI wording in
what the console says. Over HTTP and in headless Chromium, in zh-CN and English.

The app runs with no model loaded (as tests/test_console_i18n.py) on a copy of the
project; the calls are written into its call log as the recorder would, so it takes
seconds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
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
from ivr.console import CONSOLE, ConsoleContext
from ivr.console.auth import CSRF_HEADER, hash_password
from ivr.console.routes import ROUTES, TRAINERS
from ivr.core.events import CallEnded, CallStarted, MisrouteSignal, TurnTaken
from ivr.project import Project
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.trainer.labelling import SynonymError, add_synonym
from ivr.trainer.proposals import proposals_file, read_proposals
from ivr.trainer.review import ReviewError, find_cluster, review_queue
from ivr.voice.session import VoiceServices
from ivr.voice.tts import EspeakTts, PromptAudio

SECOND, SECOND_PASSWORD = "kim", "second-trainer-口令-7"
ADMIN_USER, ADMIN_PASSWORD = "ada", "admin-口令-8"
# Callers asking to open an account: the model has no intent for it (nlu_fallback).
OPEN = ("我要开个账户", "我想开个账户", "我要开个户")
BRANCH = "营业厅礼拜六几点关门呀"  # not understood either, but a branch_info question
UNSURE = "我那个余额查一下"  # check_balance, unsure
# A near-homophone the lexicon leaves out on purpose: refused unless forced.
LEFT_OUT = ("小户", "销户")


def log_turns(store: CallStore, call_id: str, at: float, text: str, intent: str,
              confidence: float, signal: str) -> None:
    """A finished call of one caller utterance carrying a misroute signal."""
    events = [CallStarted(call_id=call_id, at=at, transport="websocket",
                          caller="+8613800000001", locale="zh"),
              TurnTaken(call_id=call_id, at=at + 1, n=1, input={"say": text},
                        normalized=text, intent=intent, confidence=confidence,
                        intent_ranking=[{"name": intent, "confidence": confidence}]),
              MisrouteSignal(call_id=call_id, at=at + 2, signal=signal, turn=1),
              CallEnded(call_id=call_id, at=at + 30, transport="websocket", locale="zh",
                        outcome="escalated", queue="general", reason="no_match")]
    store.write([(1, events[0])], "labelling-test")
    store.write(list(enumerate(events[1:], 2)), "labelling-test")


@dataclass
class Desk:
    url: str
    context: ConsoleContext
    project: Project  # the copy


@pytest.fixture(scope="module")
async def desk(project: Project, tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[Desk]:
    """The app on a copy of the project: three trainers' worth of users, and calls the
    model got wrong in the call log."""
    tmp = tmp_path_factory.mktemp("labelling")
    (tmp / "project").mkdir()
    copy = copy_project(project.root, tmp / "project")
    services = VoiceServices(engines={}, locales={}, prompts=PromptAudio(EspeakTts()),
                             recognizer_for=lambda locale: None, default_locale="zh")
    settings = ServerSettings(
        audiosocket_port=-1, ws_token="labelling-token", default_locale="zh",
        call_log=CallLogSettings(url=f"sqlite:///{tmp / 'calls.sqlite3'}",
                                 recordings=tmp / "rec", instance="labelling-test"))
    app = build_app(settings, services, copy.root)
    async with serving(app) as url:
        context = app[CONSOLE]
        context.replayer = StubReplayer()  # type: ignore[assignment]
        store = context.store
        for name, role, password in ((OPS_USER, "ops", OPS_PASSWORD),
                                     (TRAINER_USER, "trainer", TRAINER_PASSWORD),
                                     (SECOND, "trainer", SECOND_PASSWORD),
                                     (ADMIN_USER, "admin", ADMIN_PASSWORD)):
            context.accounts.set_user(name, role, hash_password(password))
        now = time.time()
        for i, text in enumerate(OPEN):
            log_turns(store, f"open-{i}", now - 600 + i, text, "nlu_fallback", 0.31, "no_match")
        log_turns(store, "branch", now - 500, BRANCH, "nlu_fallback", 0.28, "no_match")
        log_turns(store, "unsure", now - 400, UNSURE, "check_balance", 0.52, "low_confidence")
        yield Desk(url, context, copy)


def _clusters(desk: Desk) -> dict[str, Any]:
    """The queue's clusters by their first wording."""
    queue = review_queue(desk.context.store, "zh", time.time() - 3600)
    return {c.texts(1)[0]: c for c in queue}


def _open_cluster(desk: Desk) -> str:
    return next(c.id for text, c in _clusters(desk).items() if text in OPEN)


# --- no CLI wording: the remedy is the front end's own ------------------------------------
async def test_errors_keep_the_clis_words_for_the_cli_only(desk: Desk) -> None:
    """``str(error)`` is what the CLI prints (its flags); the console gets the message and
    a remedy code it says with its own controls."""
    with pytest.raises(SynonymError) as refused:
        add_synonym(desk.project, desk.context.store, *LEFT_OUT, "asr", "tom")
    assert str(refused.value).endswith("(add it anyway with --force)")
    assert "--force" not in refused.value.message
    assert refused.value.remedy and refused.value.remedy.code == "synonym_force"
    with pytest.raises(ReviewError) as missing:
        find_cluster([], "cdeadbeef00")
    assert "ivr review list" in str(missing.value)
    assert "ivr review" not in missing.value.message


async def test_refusals_on_the_console_name_no_cli_flags(desk: Desk) -> None:
    async with http_client() as http:
        csrf = await login(http, desk.url, TRAINER_USER, TRAINER_PASSWORD)
        resp = await http.post(f"{desk.url}/console/api/review/synonym", headers={
            CSRF_HEADER: csrf}, json={"locale": "zh", "key": LEFT_OUT[0],
                                      "mandarin": LEFT_OUT[1], "dialect": "asr"})
        body = await resp.json()
        assert resp.status == 400 and "out on purpose" in body["error"]
        assert body["remedy"] == "synonym_force" and "--force" not in body["error"]
        resp = await http.get(f"{desk.url}/console/api/review/clusters/cdeadbeef00?locale=zh")
        body = await resp.json()
        assert resp.status == 404 and body["remedy"] == "review_list"
        assert "ivr " not in body["error"] and "`" not in body["error"]
        resp = await http.post(f"{desk.url}/console/api/review/label", headers={
            CSRF_HEADER: csrf}, json={"locale": "zh", "target": "cdeadbeef00",
                                      "intent": "branch_info"})
        body = await resp.json()
        assert resp.status == 400 and "ivr review" not in body["error"]
        assert body["remedy"] == "review_list"


# --- proposals over HTTP --------------------------------------------------------------------
async def test_a_proposal_is_validated_and_only_trainers_make_one(desk: Desk) -> None:
    cluster = _open_cluster(desk)
    good = {"locale": "zh", "target": cluster, "intent": "open_account", "label": "开立账户",
            "route": "general"}
    refusals = [({"intent": "Open Account"}, "snake_case"),
                ({"intent": "open__account"}, "snake_case"),
                ({"intent": "开户"}, "snake_case"),
                ({"intent": "a" * 65}, "at most 64"),
                ({"intent": "branch_info"}, "existing intent"),
                ({"intent": "call_start"}, "existing intent"),  # in domain.yml, no examples
                ({"intent": "nlu_fallback"}, "existing intent"),
                ({"label": "open an account"}, "in Chinese"),
                ({"label": "开" * 41}, "40"),
                ({"route": "nowhere"}, "answer"),
                ({"route": "../../domain"}, "answer")]
    async with http_client() as trainer, http_client() as ops:
        csrf = await login(trainer, desk.url, TRAINER_USER, TRAINER_PASSWORD)
        for change, says in refusals:
            resp = await trainer.post(f"{desk.url}/console/api/review/proposals",
                                      headers={CSRF_HEADER: csrf}, json={**good, **change})
            assert resp.status == 400, change
            assert says in (await resp.json())["error"], change
        resp = await trainer.post(f"{desk.url}/console/api/review/proposals", json=good)
        assert resp.status == 403  # no CSRF token
        resp = await trainer.post(f"{desk.url}/console/api/review/proposals",
                                  headers={CSRF_HEADER: csrf, "Origin": "https://evil.example"},
                                  json=good)
        assert resp.status == 403  # another site's page (ivr/server/webguard.py)
        ops_csrf = await login(ops, desk.url, OPS_USER, OPS_PASSWORD)
        resp = await ops.post(f"{desk.url}/console/api/review/proposals",
                              headers={CSRF_HEADER: ops_csrf}, json=good)
        assert resp.status == 403
        assert (await ops.get(f"{desk.url}/console/api/review/proposals?locale=zh")).status == 403
    assert not proposals_file(desk.project).exists()  # nothing stored by the refusals
    paths = {r.path: r.roles for r in ROUTES if "proposals" in r.path}
    assert set(paths.values()) == {TRAINERS} and len(paths) == 2


# --- in the browser, in Chinese then in English ---------------------------------------------
async def test_labelling_and_proposing_in_the_browser(desk: Desk) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    fingerprint = desk.project.fingerprint()
    labelled = desk.project.labelled

    async def script(browser: Any) -> None:
        errors: list[str] = []
        context = await browser.new_context(locale="zh-CN", viewport={"width": 1360,
                                                                      "height": 900})
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(page, desk.url, TRAINER_USER, TRAINER_PASSWORD)
        await page.wait_for_selector('a[data-view="review"]:not([hidden])')
        await page.click('a[data-view="review"]')
        await page.wait_for_selector("#clusters tr[data-cluster]")
        assert await page.locator("#clusters tbody tr").count() == 3
        assert "暂无提案" in await page.inner_text("#proposals")

        # A cluster the model understood starts on its intent (a confirmation) ...
        await page.locator("#clusters tr", has_text=UNSURE).click()
        await page.wait_for_selector("#items tr[data-item]")
        assert await page.input_value("#label-intent") == "check_balance"
        assert await page.is_enabled("#label-cluster")
        await page.click("a.back")
        # ... one it did not starts on nothing, its button disabled until a choice.
        await page.locator("#clusters tr", has_text=BRANCH).click()
        await page.wait_for_selector("#items tr[data-item]")
        assert await page.input_value("#label-intent") == ""
        assert "请选择意图" in await page.inner_text("#label-intent option:checked")
        assert await page.is_disabled("#label-cluster")
        await page.screenshot(path=SHOTS / "cluster-unknown-zh.png", full_page=True)
        # A refusal says how to go on with the page's controls, in Chinese, never a flag.
        await page.uncheck("#synonym-label")
        await page.fill("#synonym-key", LEFT_OUT[0])
        await page.fill("#synonym-mandarin", LEFT_OUT[1])
        await page.select_option("#synonym-dialect", "asr")
        await page.click("#synonym-add")
        await page.wait_for_selector("#synonym-result .form-error")
        refusal = await page.inner_text("#synonym-result")
        assert "即使会改写普通话例句也添加" in refusal and "--force" not in refusal
        await page.select_option("#label-intent", "branch_info")
        assert await page.is_enabled("#label-cluster")
        await page.click("#label-cluster")
        # Labelled, the cluster has left the queue: so has the page.
        await page.wait_for_selector("#review-flash #label-result li[data-status]")
        assert "#/review?" in page.url
        assert "1 已添加" in await page.inner_text("#review-flash")
        assert "查询网点信息" in await page.inner_text("#review-flash")
        assert await page.locator("#clusters tbody tr").count() == 2
        assert BRANCH not in await page.inner_text("#clusters")

        # No intent fits opening an account: propose one.
        await page.locator("#clusters tr", has_text=OPEN[0]).click()
        await page.wait_for_selector("#propose")
        route_options = await page.locator("#propose-route option").all_inner_texts()
        assert "由系统自助应答" in route_options and "转接卡务专员" in route_options
        await page.fill("#propose-name", "Open Account")
        await page.fill("#propose-label", "开立账户")
        await page.select_option("#propose-route", "general")
        await page.click("#propose-submit")
        await page.wait_for_selector("#propose-result .form-error")
        assert "snake_case" in await page.inner_text("#propose-result")
        await page.fill("#propose-name", "open_account")
        await page.click("#propose-submit")
        await page.wait_for_selector("#review-flash #propose-result")
        assert "3 已添加" in await page.inner_text("#review-flash")
        assert await page.locator("#clusters tbody tr").count() == 1
        row = page.locator('#proposals tr[data-intent="open_account"]')
        shown = await row.inner_text()
        assert "开立账户" in shown and "待审核" in shown and "转接综合服务专员" in shown
        assert all(text in shown for text in OPEN)
        assert "等待其他人审核" in shown  # its author may not accept it
        assert await row.locator("button").count() == 0
        await page.screenshot(path=SHOTS / "proposals-zh.png", full_page=True)
        assert await page.evaluate("() => [...missingMessages]") == []
        await context.close()

        # Another trainer, in English, accepts it.
        context = await browser.new_context(locale="en-US", viewport={"width": 1360,
                                                                      "height": 900})
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        await sign_in(page, desk.url, SECOND, SECOND_PASSWORD)
        await page.wait_for_selector('a[data-view="review"]:not([hidden])')
        await page.click('a[data-view="review"]')
        await page.wait_for_selector('#proposals tr[data-intent="open_account"]')
        row = page.locator('#proposals tr[data-intent="open_account"]')
        assert "pending review" in await row.inner_text()
        assert "to general" in await row.inner_text()
        await row.locator('button[data-action="accept"]').click()
        await page.wait_for_function(
            "() => document.querySelector('#proposals tr[data-intent=\"open_account\"]')"
            ".innerText.includes('accepted')")
        assert "by kim" in await row.inner_text()
        assert await row.locator("button").count() == 0
        await page.screenshot(path=SHOTS / "proposals-en.png", full_page=True)
        # The cluster left still starts on the model's intent.
        await page.locator("#clusters tr", has_text=UNSURE).click()
        await page.wait_for_selector("#label-intent")
        assert await page.input_value("#label-intent") == "check_balance"
        assert await page.evaluate("() => [...missingMessages]") == []
        await context.close()
        assert errors == []

    await in_browser(script)

    # What it all wrote: a candidate change, not the live domain or the training data.
    (proposal,) = read_proposals(desk.project)
    assert (proposal.intent, proposal.label, proposal.route) == ("open_account", "开立账户",
                                                                 "general")
    assert (proposal.status, proposal.proposed_by, proposal.reviewed_by) == (
        "accepted", TRAINER_USER, SECOND)
    assert sorted(x["text"] for x in proposal.examples) == sorted(OPEN)
    assert {x["metadata"]["call"] for x in proposal.examples} == {"open-0", "open-1", "open-2"}
    assert "open_account" not in desk.project.domain.read_text(encoding="utf-8")
    assert "open_account" not in labelled.read_text(encoding="utf-8")
    assert BRANCH in labelled.read_text(encoding="utf-8")
    stored = yaml.safe_load(proposals_file(desk.project).read_text(encoding="utf-8"))
    assert stored["proposals"][0]["label"] == "开立账户"  # UTF-8, not escapes
    assert "开立账户" in proposals_file(desk.project).read_text(encoding="utf-8")
    # Only the label moved the fingerprint (labelled.yml); the proposal did not.
    assert desk.project.fingerprint() != fingerprint
    labelled.unlink()
    assert desk.project.fingerprint() == fingerprint
    proposed = [lb for lb in desk.context.store.list_labels() if lb["kind"] == "proposal"]
    assert sorted(lb["text"] for lb in proposed) == sorted(OPEN)
    assert all(lb["intent"] is None and "open_account" in lb["note"] for lb in proposed)
    actions = [a["action"] for a in desk.context.accounts.audit_log()]
    assert "propose_intent" in actions and "accept_intent" in actions


async def test_a_decided_proposal_stays_decided(desk: Desk) -> None:
    """After the browser test: the author cannot decide, nor anyone twice; a rejected
    name may be proposed again, a pending or accepted one not."""
    (proposal,) = read_proposals(desk.project)
    async with http_client() as admin:
        csrf = await login(admin, desk.url, ADMIN_USER, ADMIN_PASSWORD)
        url = f"{desk.url}/console/api/review/proposals"
        resp = await admin.post(f"{url}/{proposal.id}", headers={CSRF_HEADER: csrf},
                                json={"locale": "zh", "decision": "reject"})
        assert resp.status == 409 and "accepted already by kim" in (await resp.json())["error"]
        resp = await admin.post(f"{url}/pnope", headers={CSRF_HEADER: csrf},
                                json={"locale": "zh", "decision": "accept"})
        assert resp.status == 404
        resp = await admin.post(f"{url}/{proposal.id}", headers={CSRF_HEADER: csrf},
                                json={"locale": "zh", "decision": "maybe"})
        assert resp.status == 400
        unsure = next(c.id for text, c in _clusters(desk).items() if text == UNSURE)
        resp = await admin.post(url, headers={CSRF_HEADER: csrf}, json={
            "locale": "zh", "target": unsure, "intent": "open_account", "label": "开户",
            "route": "answer"})
        assert resp.status == 400 and "proposed already" in (await resp.json())["error"]
        resp = await admin.post(url, headers={CSRF_HEADER: csrf}, json={
            "locale": "zh", "target": unsure, "intent": "balance_gossip",
            "label": "余额 6222020000001234", "route": "answer"})
        assert resp.status == 201
        made = (await resp.json())["proposal"]
        assert made["label"].startswith("余额") and "6222020000001234" not in made["label"]
        assert made["status"] == "pending" and made["proposed_by"] == ADMIN_USER
        resp = await admin.post(f"{url}/{made['id']}", headers={CSRF_HEADER: csrf},
                                json={"locale": "zh", "decision": "reject"})
        assert resp.status == 409 and "other than its author" in (await resp.json())["error"]
        listed = await (await admin.get(f"{url}?locale=zh")).json()
        assert [p["intent"] for p in listed["proposals"]] == ["balance_gossip", "open_account"]
    assert review_queue(desk.context.store, "zh", time.time() - 3600) == []
