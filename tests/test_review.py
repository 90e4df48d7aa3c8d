"""The trainers' review queue and labels (issue 5): utterances of real calls through the real
engine that it got wrong or was unsure of, clustered and ranked; labels written into a copy
of the project's data (never the real nlu_data/), on both call-log stores."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KNOWN, copy_project

from ivr.calllog.recorder import CallRecorder
from ivr.calllog.store import CallStore
from ivr.cli import main
from ivr.core.events import AgentFeedback
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.simulate import parse_script, run_script
from ivr.nlu.normalizer import Normalizer
from ivr.project import Project
from ivr.trainer.labelling import (
    LabelError,
    SynonymError,
    add_synonym,
    label_intent,
    mark_asr_error,
)
from ivr.trainer.review import find_item, review_queue
from ivr.trainer.training import check_inputs

# Each a call; what the model makes of the first utterance is in the comment.
CALLS = {
    "open": [{"say": "我要开个账户"}],  # nlu_fallback: no intent for opening an account
    "open_account": [{"say": "我想开个账户"}],  # the same, other words
    "open_again": [{"say": "我要开个户"}],
    "fee": [{"say": "转账手续费多少"}],  # nlu_fallback too, but unlike the three above
    # recent_transactions, then corrected right after the routing decision (during the
    # PIN entry it asks for)
    "transfer": [{"say": "我想查一下交易明细"}, {"say": "不是这个，我说的是信用卡"}],
    # answered (exchange_rate), then the caller wants a person anyway: a preference, not
    # a misroute (issue 16), so not in the queue
    "rate": [{"say": "美元汇率多少"}, {"say": "转人工"}],
    # the same answer, contradicted: a correction of it
    "rate_wrong": [{"say": "美元汇率多少"}, {"say": "不对，转人工"}],
    # complaint 0.99 (a confident misroute): sent to complaints; the agent desktop moves it
    # to general
    "fee_complaint": [{"say": "手续费怎么收"}],
}
OPEN = {"我要开个账户", "我想开个账户", "我要开个户"}


async def _calls(engine: DialogueEngine, recorder: CallRecorder,
                 calls: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    ids = {}
    for name, turns in calls.items():
        script = parse_script({"caller": KNOWN, "turns": turns}, Path(f"<{name}>"))
        ids[name] = (await run_script(script, engine, None, recorder.record)).call_id
    return ids


@pytest.fixture
async def logged(engine: DialogueEngine, store: CallStore,
                 recorder: CallRecorder) -> dict[str, str]:
    """The calls of CALLS in the store (name: call id), the misroute fed back by the ACD."""
    ids = await _calls(engine, recorder, CALLS)
    assert recorder.flush()
    store.append_event(AgentFeedback(  # as POST /acd/feedback does
        call_id=ids["fee_complaint"], kind="wrong_queue", from_queue="complaints",
        to_queue="general", agent="agent-7"))
    return ids


def _queue(store: CallStore) -> list[Any]:
    return review_queue(store, "zh", time.time() - 3600)


def _item(store: CallStore, call_id: str) -> Any:
    return next(i for c in _queue(store) for i in c.items if i.call_id == call_id)


async def test_the_queue_groups_similar_wordings_and_ranks_clusters_by_calls(
        store: CallStore, logged: dict[str, str]) -> None:
    clusters = _queue(store)
    first = clusters[0]
    assert (first.intent, first.calls, set(first.texts())) == ("nlu_fallback", 3, OPEN)
    fee = next(c for c in clusters if "转账手续费多少" in c.texts())
    assert fee.intent == "nlu_fallback" and fee.id != first.id and fee.calls == 1
    assert [c.id for c in _queue(store)] == [c.id for c in clusters]  # ids are stable
    assert review_queue(store, "ko", None) == []

    item = first.items[0]  # not understood, and the caller gave up
    assert item.signals == ["no_match", "ended_unserved"] and item.score == 2.0
    assert item.next["call"]["outcome"] == "hangup"
    # A correction blames the turn it corrects; the correction itself is not an item.
    transfer = _item(store, logged["transfer"])
    assert (transfer.n, transfer.text, transfer.intent) == (
        1, "我想查一下交易明细", "recent_transactions")
    assert transfer.signals == ["correction"] and len(transfer.ranking) == 3
    # Said while the PIN was asked for: masked whole (SPEC rule 3), re-routed all the same.
    assert transfer.next["turn"]["input"] == {"say": "*" * len("不是这个，我说的是信用卡"),
                                              "masked": "pin"}
    assert transfer.next["call"]["intent"] == "credit_card_bill"
    assert all("不是这个" not in t for c in clusters for t in c.texts())
    # 转人工 after a right answer flags nothing; 不对，转人工 flags the answer, saying why.
    assert logged["rate"] not in {i.call_id for c in clusters for i in c.items}
    assert find_item(store, f"{logged['rate']}:1").signals == []
    rate = _item(store, logged["rate_wrong"])
    assert (rate.text, rate.signals, rate.score) == ("美元汇率多少", ["correction"], 2.0)
    assert [(w["turn"], w["text"], w["intent"]) for w in rate.why] == [
        (2, "不对，转人工", "human_agent")]
    assert rate.likely_intent is None  # an agent is no topic to label it with
    # The agent desktop's feedback marks the turn that decided the route.
    sent_back = _item(store, logged["fee_complaint"])
    assert (sent_back.text, sent_back.intent) == ("手续费怎么收", "complaint")
    assert sent_back.signals == ["acd_wrong_queue"]
    assert sent_back.next["call"]["queue"] == "complaints"
    assert sent_back.next["feedback"] == [{"kind": "wrong_queue", "from_queue": "complaints",
                                           "to_queue": "general", "by": "agent-7"}]
    assert json.dumps(first.as_dict(), ensure_ascii=False)  # the console's JSON


async def test_labelling_a_cluster_writes_rasa_examples_with_who_and_when(
        store: CallStore, logged: dict[str, str], project: Project, tmp_path: Path) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    real = project.fingerprint()
    copy = copy_project(project.root, tmp_path)
    mine = "# Reviewed by the cards team.\nversion: \"3.1\"\nnlu:\n- intent: branch_info\n" \
           "  examples: |\n    - 去网点开户要带什么\n"
    copy.labelled.write_text(mine, encoding="utf-8")
    before = copy.fingerprint()
    cluster = _queue(store)[0]

    result = label_intent(copy, store, cluster.items, "branch_info", "kim", cluster.id)

    assert [o.status for o in result.outcomes] == ["added"] * 3
    text = copy.labelled.read_text(encoding="utf-8")
    assert text.startswith(mine)  # what was there, comments included, stays as it was
    check_inputs(copy)
    loaded = {m.get("text"): m for path in copy.nlu_files()  # what `ivr train` trains on
              for m in load_data(str(path)).intent_examples}
    for item in cluster.items:
        example = loaded[item.text]
        assert example.get("intent") == "branch_info"
        meta = example.get("metadata")["example"]
        assert (meta["labelled_by"], meta["call"], meta["turn"]) == ("kim", item.call_id, 1)
        assert meta["labelled_at"].endswith("Z")
    assert loaded["去网点开户要带什么"].get("intent") == "branch_info"
    assert copy.fingerprint() != before and project.fingerprint() == real
    # Recorded with who and when; the cluster leaves the queue, the others stay.
    labels = store.list_labels(kind="intent")
    assert {(lb["call_id"], lb["turn"], lb["cluster"], lb["by"]) for lb in labels} == {
        (i.call_id, 1, cluster.id, "kim") for i in cluster.items}
    assert store.labels_for([cluster.items[0].call_id])[cluster.items[0].call_id][
        "intent"] == "branch_info"  # replay reports judge models by it
    left = _queue(store)
    assert cluster.id not in {c.id for c in left} and len(left) == 4
    assert not OPEN & {t for c in left for t in c.texts()}

    # Labelling again appends a block and keeps the first.
    label_intent(copy, store, [_item(store, logged["transfer"])], "credit_card_bill", "lee")
    again = copy.labelled.read_text(encoding="utf-8")
    assert again.startswith(text) and again.count("- intent: ") == 3
    assert store.list_labels(kind="intent")[-1]["text"] == "我想查一下交易明细"


async def test_contradictions_and_masked_digits_are_flagged_not_added(
        store: CallStore, engine: DialogueEngine, recorder: CallRecorder, logged: dict[str, str],
        project: Project, tmp_path: Path) -> None:
    copy = copy_project(project.root, tmp_path)
    ids = await _calls(engine, recorder, {
        "misheard": [{"say": "查与额"}],  # ASR for 查余额, an example of check_balance
        "card": [{"say": "我的卡号是6222021234567890123"}],
        "open_again": [{"say": "我要开个账户！"}],  # punctuation aside, labelled below
    })
    assert recorder.flush()
    misheard = find_item(store, f"{ids['misheard']}:1")
    assert misheard.normalized == "查余额"

    result = label_intent(copy, store, [misheard], "recent_transactions", "kim")
    (outcome,) = result.outcomes
    assert outcome.status == "conflict"
    assert "check_balance" in outcome.detail and "banking.yml" in outcome.detail
    assert not copy.labelled.exists() and store.list_labels() == []  # still to be looked at

    card = find_item(store, f"{ids['card'][:8]}:1")  # a call id prefix will do
    assert "6222021234567890123" not in card.text and "*" in card.text
    result = label_intent(copy, store, [card], "check_balance", "kim")
    assert [o.status for o in result.outcomes] == ["masked"]
    assert not copy.labelled.exists()
    assert store.list_labels()[0]["turn"] == 1  # labelled: it leaves the queue all the same

    # A label contradicting one given earlier (labelled.yml is data like any other file).
    label_intent(copy, store, [find_item(store, f"{logged['open']}:1")], "branch_info", "kim")
    again = find_item(store, f"{ids['open_again']}:1")
    result = label_intent(copy, store, [again], "wealth_management", "lee")
    assert result.outcomes[0].status == "conflict"
    assert "branch_info in labelled.yml" in result.outcomes[0].detail

    with pytest.raises(LabelError, match="intent 'open_account'"):
        label_intent(copy, store, [again], "open_account", "kim")

    # An ASR error: what the caller said is recorded; with an intent, it is an example too.
    fee = _item(store, logged["fee"])
    result = mark_asr_error(copy, store, fee, "转账手续费是多少钱", "kim", intent="out_of_scope")
    assert [o.status for o in result.outcomes] == ["added"]
    assert "转账手续费是多少钱" in copy.labelled.read_text(encoding="utf-8")
    errors = store.list_labels(kind="asr_error")
    assert (errors[0]["text"], errors[0]["turn"], errors[0]["note"]) == (
        "转账手续费是多少钱", fee.n, "heard: 转账手续费多少")
    assert logged["fee"] not in {i.call_id for c in _queue(store) for i in c.items}


async def test_a_dialect_synonym_lands_in_the_copy_with_its_comments(
        store: CallStore, logged: dict[str, str], project: Project, tmp_path: Path) -> None:
    copy = copy_project(project.root, tmp_path)
    dialects, lexicon = copy.nlu_dir / "dialects.yml", copy.nlu_dir / "lexicon.yml"
    old = dialects.read_text(encoding="utf-8").splitlines()
    before = copy.fingerprint()
    item = _item(store, logged["rate_wrong"])

    add_synonym(copy, store, "咭", "卡", "yue", "kim", items=[item])

    new = dialects.read_text(encoding="utf-8").splitlines()
    added = [line for line in new if line not in old]
    assert len(new) == len(old) + 1 and [line for line in new if line in old] == old
    assert added[0].startswith("    咭: 卡  # kim ")
    yue, sc = new.index("  yue:            # 粤语 Cantonese"), new.index(
        "  sc:             # 四川话 Sichuanese")
    assert yue < new.index(added[0]) < sc  # in its dialect's section
    normalizer = Normalizer.from_files(dialects, lexicon)
    heard = normalizer.normalize("我张信用咭唔见咗")
    assert (heard.text, heard.dialect) == ("我张信用卡丢了", "yue")
    assert copy.fingerprint() != before  # `ivr train` retrains with it
    assert store.list_labels(kind="synonym")[0]["note"] == "yue: 咭 → 卡"
    assert logged["rate_wrong"] not in {i.call_id for c in _queue(store) for i in c.items}

    with pytest.raises(SynonymError, match=r"already in dialects\.yml under yue"):
        add_synonym(copy, store, "睇", "看", "yue", "kim")
    with pytest.raises(SynonymError, match="Mandarin training example"):
        add_synonym(copy, store, "的卡", "卡", "db", "kim")  # 我的卡 is plain Mandarin
    with pytest.raises(SynonymError, match="dialect 'hk'"):
        add_synonym(copy, store, "咭", "卡", "hk", "kim")
    with pytest.raises(SynonymError, match="already repaired"):
        add_synonym(copy, store, "刮失", "挂失", "asr", "kim")

    # A near-homophone: its term goes to the lexicon, which then repairs it.
    lexicon_before = lexicon.read_text(encoding="utf-8")
    add_synonym(copy, store, "开护", "开户", "asr", "kim")
    assert lexicon.read_text(encoding="utf-8").count("\n") == lexicon_before.count("\n") + 1
    normalizer = Normalizer.from_files(dialects, lexicon)
    assert normalizer.normalize("我想开护").text == "我想开户"
    with pytest.raises(SynonymError, match="out on purpose"):
        add_synonym(copy, store, "小户", "销户", "asr", "kim")  # its header says: 小户
    assert dialects.read_text(encoding="utf-8").splitlines() == new
    assert store.list_labels(kind="synonym")[-1]["call_id"] == ""  # tied to no call


async def test_the_cli_lists_shows_and_labels(
        store_url: str, store: CallStore, logged: dict[str, str], project: Project,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IVR_CALL_LOG", store_url)
    copy = copy_project(project.root, tmp_path)

    async def ivr(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["--project", str(copy.root), "review", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await ivr("list", "--json")
    clusters = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and clusters[0]["calls"] == 3 and set(clusters[0]["texts"]) == OPEN
    fee = next(c for c in clusters if c["texts"] == ["转账手续费多少"])
    code, out, _ = await ivr("show", fee["id"][:6], "--json")
    assert code == 0 and json.loads(out)["items_detail"][0]["text"] == "转账手续费多少"
    code, out, _ = await ivr("list")
    assert code == 0 and "我要开个账户" in out and "5 cluster(s)" in out

    code, out, _ = await ivr("label", clusters[0]["id"], "--intent", "branch_info",
                             "--by", "kim")
    assert code == 0 and "3 example(s) added" in out and "labelled.yml" in out
    assert "我想开个账户" in copy.labelled.read_text(encoding="utf-8")
    code, out, _ = await ivr("list", "--json")
    assert clusters[0]["id"] not in out and fee["id"] in out

    code, out, err = await ivr("label", f"{logged['transfer']}:1", "--intent", "no_such")
    assert code == 1 and err.startswith("error: intent 'no_such'")
    code, _, err = await ivr("label", "cffffffffff", "--intent", "branch_info")
    assert code == 1 and err.startswith("error: no cluster")
    code, _, err = await ivr("synonym", "睇", "看", "--dialect", "yue")
    assert code == 1 and err.count("\n") == 1 and "already" in err
    code, out, _ = await ivr("asr", f"{logged['fee']}:1", "--said", "转账手续费是多少")
    assert code == 0 and "ASR error recorded" in out


# --- issue 16: confident misroutes reach the queue, saying why; right answers do not ------
ISSUE_CALLS = {
    # check_balance served (PIN keyed), then taken back for the credit-card bill
    "corrected": [{"say": "查一下余额"}, {"dtmf": "123456"}, {"say": "不是，我要查信用卡账单"}],
    # loan_inquiry 0.87, sent to loans: the agent desktop says wrong queue
    "passbook": [{"say": "我想办个新存折"}],
    # affirm 0.56: nothing done, the call over
    "open": [{"say": "开户"}],
    # answered, and asked again in other words
    "repeat": [{"say": "美元汇率多少"}, {"say": "美元汇率是多少"}],
    # answered; the caller hangs up at once (weak alone: not queued) or wants a person
    "answered": [{"say": "美元汇率多少"}],
    "agent": [{"say": "美元汇率多少"}, {"say": "转人工"}],
}


async def test_confident_misroutes_are_queued_with_why_in_the_cli_and_the_console(
        engine: DialogueEngine, store: CallStore, recorder: CallRecorder, store_url: str,
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ids = await _calls(engine, recorder, ISSUE_CALLS)
    assert recorder.flush()
    store.append_event(AgentFeedback(  # as POST /acd/feedback does
        call_id=ids["passbook"], kind="wrong_queue", from_queue="loans", to_queue="general",
        agent="a-3"))

    clusters = _queue(store)
    queued = {i.call_id: i for c in clusters for i in c.items}
    assert set(queued) == {ids[n] for n in ("corrected", "passbook", "open", "repeat")}
    assert [c.items[0].call_id for c in clusters] == [  # weightiest first
        ids["passbook"], ids["corrected"], ids["repeat"], ids["open"]]
    passbook = queued[ids["passbook"]]
    assert (passbook.intent, passbook.signals, passbook.score) == (
        "loan_inquiry", ["acd_wrong_queue"], 3.0)
    corrected = queued[ids["corrected"]]
    assert (corrected.n, corrected.text, corrected.intent) == (1, "查一下余额", "check_balance")
    assert corrected.why[0] | {"zh": None} == {
        "signal": "correction", "weight": 2.0, "turn": 3, "text": "不是，我要查信用卡账单",
        "intent": "credit_card_bill", "zh": None, "en": "the caller corrected it"}
    assert corrected.likely_intent == "credit_card_bill"
    assert queued[ids["open"]].signals == ["ended_unserved"]
    assert queued[ids["open"]].intent == "affirm"
    assert (queued[ids["repeat"]].n, queued[ids["repeat"]].signals) == (1, ["repeat_request"])
    answered = find_item(store, f"{ids['answered']}:1")
    assert answered.signals == ["hangup_after_answer"] and not answered.flagged
    assert find_item(store, f"{ids['agent']}:1").signals == []

    # The CLI lists them weightiest first and shows why each is there.
    monkeypatch.setenv("IVR_CALL_LOG", store_url)
    copy = copy_project(project.root, tmp_path)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--project", str(copy.root), "review", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "3.0  loan_inquiry" in listed[0] and "acd_wrong_queue 1" in listed[0]
    assert "4 cluster(s)" in listed[-1]
    assert await asyncio.to_thread(main, ["--project", str(copy.root), "review", "show",
                                          clusters[1].id]) == 0
    shown = capsys.readouterr().out
    assert ("why  2 correction (the caller corrected it), turn 3 “不是，我要查信用卡账单” → "
            "credit_card_bill") in shown
    assert "meant probably credit_card_bill" in shown

    # The console's review API gives the same, with each item's why.
    async with _console(store_url, copy) as (http, url):
        listing = await (await http.get(f"{url}/review?locale=zh&hours=1")).json()
        assert [c["id"] for c in listing["clusters"]] == [c.id for c in clusters]
        assert listing["clusters"][0]["score"] == 3.0
        assert listing["clusters"][1]["likely_intents"] == {"credit_card_bill": 1}
        one = await (await http.get(f"{url}/review/clusters/{clusters[1].id}?locale=zh&hours=1"
                                    )).json()
        (item,) = one["items_detail"]
        assert (item["score"], item["likely_intent"]) == (2.0, "credit_card_bill")
        assert [(w["signal"], w["turn"], w["text"]) for w in item["why"]] == [
            ("correction", 3, "不是，我要查信用卡账单")]


@contextlib.asynccontextmanager
async def _console(store_url: str, copy: Project) -> AsyncIterator[tuple[Any, str]]:
    """The console's routes alone on a free port, on the call log ``store_url`` and the
    project ``copy``; yields a trainer's logged-in HTTP session and the API's base URL."""
    from aiohttp import web
    from phones import serving
    from test_console import http_client, login

    from ivr.console import CONSOLE, ConsoleContext, add_console
    from ivr.console.auth import TRAINER, hash_password

    store = CallStore(store_url)  # opened once the console's tables are known: it adds them
    app = web.Application()
    add_console(app)
    app[CONSOLE] = ConsoleContext(store, None, None, lambda: 0,  # type: ignore[arg-type]
                                  project_root=copy.root)
    app[CONSOLE].accounts.set_user("tom", TRAINER, hash_password("trainer-密码-3"))
    async with serving(app) as url, http_client() as http:
        await login(http, url, "tom", "trainer-密码-3")
        yield http, f"{url}/console/api"
    store.close()
