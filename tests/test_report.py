"""A call's report and its handoff bundle: typed, with the JSON shapes ``ivr simulate
--json``, the ACD and the ``end`` event have always had (keys, order, what is left out)."""

from __future__ import annotations

from dataclasses import replace

from call_reports import bundle, report
from test_call import BrokenDialogue

from ivr.core.events import CallEnded, CallEvent, HandoffDelivered, Routed
from ivr.core.inputs import Say
from ivr.core.report import CallReport, HandoffBundle
from ivr.dialogue.call import Call
from ivr.dialogue.handoff import Delivery

BUNDLE_KEYS = ["call_id", "external_id", "caller_id", "locale", "dialect", "queue", "skills",
               "priority", "reason", "topic", "intent_history", "slots", "transcript",
               "verification", "started_at"]
CALL_KEYS = ["call_id", "caller", "locale", "dialect", "greeting", "turns", "outcome",
             "intent", "served"]


class CapturingDesk:
    """An ACD that takes every bundle."""

    def __init__(self) -> None:
        self.bundles: list[dict] = []

    async def deliver(self, bundle: dict) -> Delivery:
        self.bundles.append(bundle)
        return Delivery("delivered", attempts=1)


def test_a_self_served_report_has_no_queue_handoff_or_voice_figures() -> None:
    served = report("self_service", caller="+8613800000001", dialect="cmn",
                    greeting=["您好"], turns=[{"input": {"say": "查余额"}}],
                    intent="check_balance", served=["check_balance"], script="a.yml")
    assert list(served.as_dict()) == [*CALL_KEYS, "script"]
    assert (served.queue, served.skills, served.priority, served.reason) == (None,) * 4
    assert list(replace(served, external_id="CA123").as_dict()) == [
        *CALL_KEYS, "external_id", "script"]


async def test_an_escalated_call_reports_its_bundle_and_its_delivery() -> None:
    events: list[CallEvent] = []
    call = Call(BrokenDialogue(), caller_id="+8613800000001",  # type: ignore[arg-type]
                transport="websocket", emit=lambda kind, **data: events.append(
                    kind(call_id=call.call_id, **data)))
    await call.start()
    await call.take(Say("我想问问房贷"))
    desk = CapturingDesk()
    escalated = await call.finish(desk)  # type: ignore[arg-type]
    assert isinstance(escalated.handoff, HandoffBundle)
    assert list(escalated.as_dict()) == [
        *CALL_KEYS, "queue", "skills", "priority", "reason", "handoff", "delivery"]
    as_dict = escalated.as_dict()
    assert (as_dict["queue"], as_dict["reason"]) == ("general", "engine_error")
    assert as_dict["delivery"] == {"status": "delivered", "attempts": 1}
    assert list(as_dict["handoff"]) == BUNDLE_KEYS
    assert desk.bundles == [as_dict["handoff"]]  # the ACD gets the same JSON
    (routed,) = [e for e in events if isinstance(e, Routed)]
    assert routed.handoff and list(routed.handoff) == BUNDLE_KEYS  # as it was when routed
    assert routed.queue == "general"
    assert [type(e) for e in events][-2:] == [HandoffDelivered, CallEnded]
    ended = events[-1]
    assert isinstance(ended, CallEnded)
    assert (ended.transport, ended.outcome, ended.queue, ended.served) == (
        "websocket", "escalated", "general", None)
    assert "transport" not in as_dict  # the voice session adds it, not the call


def test_a_caller_turned_away_reports_why_and_no_dialogue() -> None:
    busy = CallReport(call_id="c1", caller="+8613800000001", locale="zh", outcome="busy",
                      reached_dialogue=False, external_id=None, turned_away="over_capacity",
                      transport="twilio", dropped_audio_frames=0)
    assert busy.as_dict() == {
        "call_id": "c1", "caller": "+8613800000001", "external_id": None, "outcome": "busy",
        "reason": "over_capacity", "turns": [], "locale": "zh", "transport": "twilio",
        "dropped_audio_frames": 0}
    assert busy.end_fields() == {"transport": "twilio", "caller": "+8613800000001",
                                 "locale": "zh", "outcome": "busy", "reason": "over_capacity"}


def test_a_bundle_is_the_spec_interface_key_for_key() -> None:
    handoff = bundle(topic="card_lost", slots={"card_type": "credit"})
    as_dict = handoff.as_dict()
    assert list(as_dict) == BUNDLE_KEYS
    assert as_dict["topic"] == "card_lost" and as_dict["external_id"] is None
    as_dict["slots"]["card_type"] = "debit"  # a copy: the bundle stays as it was
    assert handoff.slots == {"card_type": "credit"}


def test_the_end_fields_leave_out_what_is_none_or_empty() -> None:
    hung_up = report("hangup", caller="", dialect="cmn", transport="simulate")
    assert hung_up.end_fields() == {"transport": "simulate", "caller": "", "locale": "zh",
                                    "dialect": "cmn", "outcome": "hangup"}
    escalated = report("escalated", queue="cards", reason="intent", skills=["zh", "cmn"],
                       served=["check_balance"], intent="card_lost", external_id="CA1")
    assert escalated.end_fields() == {
        "caller": "", "locale": "zh", "outcome": "escalated", "intent": "card_lost",
        "served": ["check_balance"], "queue": "cards", "reason": "intent",
        "priority": "normal", "skills": ["zh", "cmn"], "external_id": "CA1"}
