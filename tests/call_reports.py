"""Call reports and handoff bundles for tests that need one without a call."""

from __future__ import annotations

from typing import Any

from ivr.core.report import CallReport, HandoffBundle

CALL_ID = "c" * 32


def bundle(**fields: Any) -> HandoffBundle:
    """A handoff bundle to the general queue; ``fields`` replace any of its values."""
    values: dict[str, Any] = {
        "call_id": CALL_ID, "external_id": None, "caller_id": "+8613800000001",
        "locale": "zh", "dialect": "cmn", "queue": "general", "skills": ["zh", "cmn"],
        "priority": "normal", "reason": "intent", "topic": None, "intent_history": [],
        "slots": {}, "transcript": [],
        "verification": {"verified": False, "identified_by": None, "failed_attempts": 0},
        "started_at": "2026-12-03T09:00:00+00:00"}
    return HandoffBundle(**{**values, **fields})


def report(outcome: str, queue: str | None = None, reason: str | None = None,
           priority: str = "normal", skills: list[str] | None = None,
           **fields: Any) -> CallReport:
    """A call's report; an escalated one goes to ``queue`` (a bundle with ``reason``,
    ``priority`` and ``skills``), a busy one was turned away for ``reason``."""
    if outcome == "escalated":
        fields.setdefault("handoff", bundle(queue=queue, reason=reason, priority=priority,
                                            skills=skills or []))
    elif outcome == "busy":
        fields.setdefault("turned_away", reason)
    fields.setdefault("reached_dialogue", outcome != "busy")
    return CallReport(call_id=fields.pop("call_id", CALL_ID), caller=fields.pop("caller", ""),
                      locale=fields.pop("locale", "zh"), outcome=outcome, **fields)
