"""Figures over time (issue 5): containment, misroute rate and estimated accuracy per day or
week, per intent and per dialect, and the confusion matrix of labelled utterances, from
calls of the real zh engine on both call-log stores; the console's API for them."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import KNOWN
from test_review import _calls

from ivr.calllog.recorder import CallRecorder
from ivr.calllog.store import CallStore
from ivr.core import zone
from ivr.core.events import CallEvent
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.simulate import parse_script, run_script
from ivr.trainer.review import find_item
from ivr.trainer.trends import judge, promotions, trends

DAY = 86400
# Understood, nothing flagged: assumed right (the first in a Cantonese wording).
CLEAN = {"balance_yue": [{"say": "我想睇下仲有几多钱"}], "bill": [{"say": "信用卡账单"}]}
# Flagged: the first three are labelled below, the last is left pending.
FLAGGED = {
    "open": [{"say": "我要开个账户"}],  # nlu_fallback; the caller meant branch_info
    "open_again": [{"say": "我要开个户"}],
    # contradicted (不对): a correction of the answer, which was right after all; a plain
    # 转人工 would flag nothing (issue 16)
    "rate": [{"say": "美元汇率多少"}, {"say": "不对，转人工"}],
    "fee": [{"say": "转账手续费多少"}],  # nlu_fallback, nobody has looked yet
}


@pytest.fixture
async def history(engine: DialogueEngine, store: CallStore,
                  recorder: CallRecorder) -> dict[str, str]:
    """Today's calls of CLEAN and FLAGGED, three labelled; and one clean call three days
    ago, recorded as it happened then (its events' clock moved back)."""
    ids = await _calls(engine, recorder, {**CLEAN, **FLAGGED})

    def three_days_ago(event: CallEvent) -> None:
        recorder.record(dataclasses.replace(event, at=event.at - 3 * DAY))

    script = parse_script({"caller": KNOWN, "turns": CLEAN["bill"]}, Path("<old>"))
    ids["old"] = (await run_script(script, engine, None, three_days_ago)).call_id
    assert recorder.flush()
    for name, intent in (("open", "branch_info"), ("open_again", "branch_info"),
                         ("rate", "exchange_rate")):
        item = find_item(store, f"{ids[name]}:1")
        store.add_label(item.call_id, "kim", intent=intent, turn=1, text=item.text,
                        kind="confirm" if intent == item.intent else "intent")
    return ids


async def test_each_utterance_is_judged_by_its_label_or_its_signals(
        store: CallStore, history: dict[str, str]) -> None:
    calls, judged, flagged = judge(store, "zh", time.time() - 7 * DAY)
    assert {c["call_id"] for c in calls} == set(history.values())
    verdicts = sorted((j.verdict, j.intent, j.predicted) for j in judged)
    assert verdicts == sorted([
        ("assumed", "check_balance", "check_balance"),
        ("assumed", "credit_card_bill", "credit_card_bill"),
        ("assumed", "credit_card_bill", "credit_card_bill"),  # three days ago
        ("wrong", "branch_info", "nlu_fallback"),
        ("wrong", "branch_info", "nlu_fallback"),
        ("right", "exchange_rate", "exchange_rate"),
        ("assumed", "human_agent", "human_agent"),  # 不对，转人工 after the answer
        ("pending", None, "nlu_fallback"),
    ]), judged
    assert {j.dialect for j in judged if j.intent == "check_balance"} == {"yue"}
    assert flagged == {history[n] for n in FLAGGED}
    assert judge(store, "ko", time.time() - 7 * DAY) == ([], [], set())


async def test_daily_series_per_intent_and_dialect_and_the_confusion_matrix(
        store: CallStore, history: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "promotions.log"
    log.write_text("\n".join([
        json.dumps({"locale": "zh", "model": "zh-1.tar.gz", "at": "2026-11-20T10:00:00Z",
                    "by": "kim", "forced": False, "heldout": None}),
        "not json",  # a hand edit is skipped, not fatal
        json.dumps({"locale": "ko", "model": "ko-1.tar.gz", "heldout": None}),
        json.dumps({"locale": "zh", "model": "zh-2.tar.gz", "at": "2026-11-27T10:00:00Z",
                    "by": "tom", "forced": True,
                    "heldout": {"live": 0.95, "candidate": 0.94, "delta": -0.01}}),
    ]) + "\n", encoding="utf-8")
    until = time.time()
    t = trends(store, "zh", until - 7 * DAY, until, log)
    assert t["bucket"] == "day" and len(t["periods"]) in (7, 8)  # today may be a new day
    today, old = len(t["periods"]) - 1, t["periods"].index(_day(until - 3 * DAY))
    assert t["periods"][today] == _day(until)
    assert (t["calls"][today], t["calls"][old], sum(t["calls"])) == (6, 1, 7)
    served = sum(c["outcome"] == "self_service" for c in _ended(store, history, old=False))
    assert t["containment"][today] == round(served / 6, 4)
    assert t["misroute_rate"][today] == round(4 / 6, 4) and t["misroute_rate"][old] == 0.0
    assert all(x is None for i, x in enumerate(t["misroute_rate"]) if i not in (today, old))

    accuracy = t["accuracy"]
    # today: 3 assumed + 1 right of 6 judged (the pending one left out); 3 days ago: 1 of 1
    assert (accuracy["series"][today], accuracy["series"][old]) == (round(4 / 6, 4), 1.0)
    assert accuracy["total"] == {"accuracy": round(5 / 7, 4), "judged": 7, "wrong": 2,
                                 "pending": 1}
    assert accuracy["pending"][today] == 1
    branch = t["per_intent"]["branch_info"]
    assert branch["total"] == {"accuracy": 0.0, "judged": 2, "wrong": 2, "pending": 0}
    assert t["per_intent"]["credit_card_bill"]["series"][old] == 1.0
    assert "nlu_fallback" not in t["per_intent"]  # nobody meant "not understood"
    assert t["per_dialect"]["yue"]["total"]["accuracy"] == 1.0
    assert t["per_dialect"]["mandarin"]["total"]["wrong"] == 2

    confusion = t["confusion"]
    assert confusion["labels"] == ["branch_info", "exchange_rate", "nlu_fallback"]
    cell = {(a, b): confusion["counts"][i][j] for i, a in enumerate(confusion["labels"])
            for j, b in enumerate(confusion["labels"])}
    assert cell[("branch_info", "nlu_fallback")] == 2
    assert cell[("exchange_rate", "exchange_rate")] == 1
    assert sum(map(sum, confusion["counts"])) == 3

    assert [p["model"] for p in t["promotions"]] == ["zh-1.tar.gz", "zh-2.tar.gz"]
    assert (t["promotions"][1]["live"], t["promotions"][1]["candidate"]) == (0.95, 0.94)
    assert promotions(tmp_path / "none.log", "zh") == []


async def test_a_long_period_is_weekly_and_empty_periods_are_gaps(
        store: CallStore, history: dict[str, str]) -> None:
    until = time.time()
    t = trends(store, "zh", until - 90 * DAY, until)
    assert t["bucket"] == "week" and len(t["periods"]) in (13, 14)
    monday = [time.strptime(p, "%Y-%m-%d").tm_wday for p in t["periods"]]
    assert set(monday) == {0}
    assert sum(t["calls"]) == 7 and t["calls"][:10] == [0] * 10
    assert t["accuracy"]["series"][:10] == [None] * 10  # no data is not 0 % accuracy
    assert t["promotions"] == []


def _day(at: float) -> str:
    return str(zone.day(at))  # the bank's day, as trends bucket by


def _ended(store: CallStore, history: dict[str, str], old: bool) -> list[dict[str, Any]]:
    return [store.find_call(cid) for name, cid in history.items() if (name == "old") == old]
