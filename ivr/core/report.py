"""What a call came to (``CallReport``) and what an agent gets with it (``HandoffBundle``,
SPEC rule 5).

The dialogue builds them (``CallRecord.result``, ``CallRecord.handoff_bundle``); the voice
session, ``ivr simulate`` and the ACD delivery add what they know with
``dataclasses.replace``, never by growing a dict. ``as_dict`` is the one JSON shape of each
(``ivr simulate --json``, the ACD's body, the ``route`` event's ``handoff``). In the core
package, so every layer reads them without importing upward.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class HandoffBundle:
    """Everything an agent needs so the caller never repeats themself (SPEC rule 5)."""

    call_id: str
    external_id: str | None  # the telephony's id, for the ACD to match
    caller_id: str
    locale: str
    dialect: str
    queue: str
    skills: list[str]
    priority: str
    reason: str
    topic: str | None
    intent_history: list[dict[str, Any]]  # turn, intent, confidence
    slots: dict[str, Any]
    transcript: list[dict[str, Any]]  # speaker and text (or the caller's input)
    verification: dict[str, Any]  # verified, identified_by, failed_attempts
    started_at: str  # ISO 8601

    def as_dict(self) -> dict[str, Any]:
        """The bundle as the ACD and agents get it: these keys, in this order (SPEC)."""
        return asdict(self)


# What the ``end`` event keeps of a report (ivr/core/events.py ``CallEnded``).
_END_FIELDS = ("transport", "caller", "locale", "dialect", "outcome", "intent", "served",
               "queue", "reason", "priority", "skills", "external_id")


@dataclass(frozen=True, kw_only=True)
class CallReport:
    """What a call came to. A caller who never reached the dialogue (turned away, or gone
    during the language menu) has ``reached_dialogue`` False and no greeting or topic."""

    call_id: str
    caller: str
    locale: str | None
    outcome: str  # self_service, escalated, hangup or busy
    turns: list[dict[str, Any]] = field(default_factory=list)  # each ``Turn.as_dict()``
    reached_dialogue: bool = True
    dialect: str | None = None
    greeting: list[str] = field(default_factory=list)
    intent: str | None = None  # the call's topic
    served: list[str] = field(default_factory=list)
    external_id: str | None = None
    handoff: HandoffBundle | None = None  # escalated calls only
    turned_away: str | None = None  # why the voice session sent the caller away
    delivery: dict[str, Any] | None = None  # the ACD's answer, once the bundle went
    transport: str | None = None  # the voice session's figures
    dropped_audio_frames: int | None = None
    script: str | None = None  # ``ivr simulate``: the script played

    @property
    def queue(self) -> str | None:
        return self.handoff.queue if self.handoff else None

    @property
    def skills(self) -> list[str] | None:
        return self.handoff.skills if self.handoff else None

    @property
    def priority(self) -> str | None:
        return self.handoff.priority if self.handoff else None

    @property
    def reason(self) -> str | None:
        """Why it was escalated, or why the caller was turned away."""
        return self.handoff.reason if self.handoff else self.turned_away

    def as_dict(self) -> dict[str, Any]:
        """The report as ``ivr simulate --json`` prints it; what is unknown or does not
        apply is left out (a caller turned away has no greeting, a self-served call no
        queue), as is what no one added (a delivery, the voice figures, a script)."""
        if self.reached_dialogue:
            report: dict[str, Any] = {
                "call_id": self.call_id, "caller": self.caller, "locale": self.locale,
                "dialect": self.dialect, "greeting": self.greeting, "turns": self.turns,
                "outcome": self.outcome, "intent": self.intent, "served": self.served}
            if self.external_id:
                report["external_id"] = self.external_id
            if self.handoff:
                report.update(queue=self.queue, skills=self.skills, priority=self.priority,
                              reason=self.reason, handoff=self.handoff.as_dict())
        else:
            report = {"call_id": self.call_id, "caller": self.caller,
                      "external_id": self.external_id, "outcome": self.outcome,
                      "reason": self.reason, "turns": self.turns, "locale": self.locale}
        added = {"delivery": self.delivery, "transport": self.transport,
                 "dropped_audio_frames": self.dropped_audio_frames, "script": self.script}
        return {**report, **{k: v for k, v in added.items() if v is not None}}

    def end_fields(self) -> dict[str, Any]:
        """What the ``end`` event keeps of the report: its summary fields that are set."""
        fields = {k: getattr(self, k) for k in _END_FIELDS}
        return {k: v for k, v in fields.items() if v not in (None, [])}
