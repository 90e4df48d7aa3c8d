"""Why an utterance is queued for review (issue 16): the signal table and how a call's
logged events become weighted evidence. Events are built here as the engine emits them
(tests/test_review.py runs the same rules on calls through the real engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ivr.core.events import (
    AgentFeedback,
    CallEvent,
    HungUp,
    MisrouteSignal,
    Routed,
    TurnTaken,
)
from ivr.trainer.review import call_items, cluster_items
from ivr.trainer.review_signals import (
    HANGUP_S,
    QUEUE_AT,
    SIGNALS,
    contradicts,
    corrections_for,
    evidence,
    likely_intent,
    score,
)

ROOT = Path(__file__).resolve().parent.parent
ZH = corrections_for("zh", ROOT / "locales" / "zh.yml")
KO = corrections_for("ko", ROOT / "locales" / "ko.yml")


def say(n: int, text: str, intent: str, at: float, served: bool = False) -> TurnTaken:
    slots = {"topic": intent, "topic_served": True} if served else None
    return TurnTaken(call_id="c", at=at, n=n, input={"say": text}, intent=intent,
                     confidence=0.99, normalized=text, slots=slots)


def event(event_type: type[CallEvent], at: float, /, **fields: Any) -> CallEvent:
    return event_type(call_id="c", at=at, **fields)


def test_the_table_weighs_the_desk_and_the_caller_over_the_model() -> None:
    w = {name: s.weight for name, s in SIGNALS.items()}
    assert w["acd_wrong_queue"] > w["correction"] > w["repeat_request"] > w["no_match"]
    assert w["hangup_after_answer"] < QUEUE_AT  # weak: alone it queues nothing
    assert "agent_after_answer" not in SIGNALS  # a preference, not a misroute
    assert all(s.zh and s.en for s in SIGNALS.values())


def test_what_a_contradiction_is_comes_from_the_locale_file() -> None:
    assert contradicts("不是，我要查信用卡账单", ZH)
    assert contradicts("不对，转人工", ZH)
    assert contradicts("我是说信用卡", ZH)
    assert contradicts("잔액 말고 카드 대금이요", KO)
    for plain in ("转人工", "不是", "是的", "我要查信用卡账单", "****", ""):
        assert not contradicts(plain, ZH), plain
    # A project without a locale file: the engine's own words.
    assert corrections_for("zh", ROOT / "none.yml") == ZH
    assert not contradicts("不是，我要查信用卡账单", corrections_for("xx"))  # no such locale


def test_a_correction_after_a_served_answer_blames_the_answer() -> None:
    events = [say(1, "查一下余额", "check_balance", 10.0),
              TurnTaken(call_id="c", at=12.0, n=2, input={"dtmf": "******"}, intent="dtmf",
                        slots={"topic_served": True}),
              say(3, "不是，我要查信用卡账单", "credit_card_bill", 20.0, served=True),
              event(HungUp, 40.0)]
    found = evidence(events, ZH, "self_service")
    assert list(found) == [1]
    (ev,) = found[1]
    assert (ev.signal, ev.turn, ev.text, ev.intent) == (
        "correction", 3, "不是，我要查信用卡账单", "credit_card_bill")
    assert likely_intent("check_balance", found[1]) == "credit_card_bill"
    assert score(found[1]) == SIGNALS["correction"].weight


def test_a_plain_request_for_an_agent_after_an_answer_flags_nothing() -> None:
    events = [say(1, "美元汇率多少", "exchange_rate", 10.0, served=True),
              say(2, "转人工", "human_agent", 14.0),
              # what the dialogue logs for it; the review queue does not take it as evidence
              event(MisrouteSignal, 14.0, signal="agent_after_answer", turn=2),
              event(Routed, 14.0, queue="general", reason="caller_request")]
    assert evidence(events, ZH, "escalated") == {}
    contradicted = [*events[:1], say(2, "不对，转人工", "human_agent", 14.0), *events[2:]]
    assert [e.signal for e in evidence(contradicted, ZH, "escalated")[1]] == ["correction"]


def test_a_hangup_right_after_an_answer_is_weak_and_a_later_one_is_none() -> None:
    answered = say(1, "美元汇率多少", "exchange_rate", 10.0, served=True)
    quick = evidence([answered, event(HungUp, 10.0 + HANGUP_S - 1)], ZH, "self_service")
    assert [e.signal for e in quick[1]] == ["hangup_after_answer"]
    assert score(quick[1]) < QUEUE_AT
    assert evidence([answered, event(HungUp, 10.0 + HANGUP_S + 1)], ZH, "self_service") == {}
    # With an unsure reading too, the two weigh enough for the queue.
    unsure = [answered, event(MisrouteSignal, 10.0, signal="low_confidence", turn=1),
              event(HungUp, 11.0)]
    found = evidence(unsure, ZH, "self_service")[1]
    assert [e.signal for e in found] == ["low_confidence", "hangup_after_answer"]
    assert score(found) == 1.5 >= QUEUE_AT


def test_a_repeat_a_call_ended_with_nothing_done_and_the_desk_each_count() -> None:
    repeat = [say(1, "美元汇率多少", "exchange_rate", 1.0, served=True),
              say(2, "美元汇率是多少", "exchange_rate", 6.0, served=True)]
    found = evidence(repeat, ZH, "self_service")
    assert [(e.signal, e.turn) for e in found[1]] == [("repeat_request", 2)]
    assert 2 not in found  # no hang-up logged: the engine ended it
    ended = evidence([say(1, "开户", "affirm", 1.0), event(HungUp, 30.0)], ZH, "hangup")
    assert [e.signal for e in ended[1]] == ["ended_unserved"]
    # An unserved topic (hung up at the PIN prompt) is abandonment, not a misreading.
    assert evidence([say(1, "查余额", "check_balance", 1.0)], ZH, "hangup") == {}
    routed = [say(1, "我想办个新存折", "loan_inquiry", 1.0),
              event(Routed, 1.0, queue="loans", reason="intent"),
              event(AgentFeedback, 99.0, kind="wrong_queue", from_queue="loans")]
    found = evidence(routed, ZH, "escalated")
    assert [(e.signal, e.weight) for e in found[1]] == [("acd_wrong_queue", 3.0)]


def test_items_carry_why_and_clusters_rank_by_weight() -> None:
    def call(call_id: str, events: list[CallEvent], outcome: str) -> dict[str, Any]:
        row = {"call_id": call_id, "started_at": 1.0, "locale": "zh", "outcome": outcome}
        return call_items(row, events)

    low = call("a", [say(1, "嗯那个", "nlu_fallback", 1.0),
                     event(MisrouteSignal, 1.0, signal="no_match", turn=1)], "escalated")
    desk = call("b", [say(1, "我想办个新存折", "loan_inquiry", 1.0),
                      event(Routed, 1.0, queue="loans"),
                      event(AgentFeedback, 9.0, kind="requeued", from_queue="loans",
                            to_queue="general", agent="a-1")], "escalated")
    fine = call("c", [say(1, "美元汇率多少", "exchange_rate", 1.0, served=True)], "self_service")
    assert not fine[1].flagged and fine[1].why == []
    item = desk[1]
    assert item.flagged and item.score == 3.0 and item.signals == ["acd_requeued"]
    assert item.why == [{"signal": "acd_requeued", "weight": 3.0, "turn": 1,
                         "text": "我想办个新存折", "intent": "loan_inquiry",
                         "zh": SIGNALS["acd_requeued"].zh, "en": SIGNALS["acd_requeued"].en}]
    clusters = cluster_items([low[1], item])
    assert [c.intent for c in clusters] == ["loan_inquiry", "nlu_fallback"]
    assert clusters[0].summary()["score"] == 3.0
