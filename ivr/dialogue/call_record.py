"""What a call records and amounts to: each turn as masked call-log events (with the
signals a trainer reviews) and the summary an agent, the ACD and ``ivr simulate`` get.

``Call`` (ivr/dialogue/call.py) takes the caller's inputs and drives the dialogue; this half reads
what it has done, and writes nothing but the call log.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ivr.core.events import Emit, MisrouteSignal, Routed, TurnTaken, VerificationChanged
from ivr.core.masking import mask_text
from ivr.core.report import CallReport, HandoffBundle
from ivr.dialogue.engine import TurnOutcome
from ivr.dialogue.handoff import skills_for
from ivr.nlu.normalizer import MANDARIN

LOW_CONFIDENCE = 0.5  # below it, or top two this close, an understanding is worth a look
CLOSE_TOP_TWO = 0.1


def standard_dialect(locale: str) -> str:
    """The dialect a parse reports when it names none (only zh's NLU detects dialects)."""
    return MANDARIN if locale == "zh" else "standard"


@dataclass
class Turn:
    """One caller input and the engine's answer, already masked."""

    input: dict[str, Any]
    intent: str | None = None
    confidence: float | None = None
    normalized: str | None = None
    dialect: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    correction_of: str | None = None
    band: str | None = None  # accept, confirm or reject (ivr/dialogue/confidence.py)
    confirmed: str | None = None  # the intent this yes confirmed

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


class CallRecord:
    """The record half of a call; ``Call`` sets the state it reads."""

    call_id: str
    external_id: str | None
    caller_id: str
    locale: str
    started_at: datetime
    greeting: list[str]
    turns: list[Turn]
    slots: dict[str, Any]
    served: list[str]
    _emit: Emit
    _routed: bool
    _nlu_s: float | None
    _engine_failure: dict[str, Any] | None

    @property
    def handoff(self) -> dict[str, Any] | None:
        return self._engine_failure or self.slots.get("handoff")

    def _log_turn(self, turn: Turn, outcome: TurnOutcome | None, parse: dict[str, Any] | None,
                  asr: dict[str, Any] | None, entry: str | None, before: dict[str, Any]) -> None:
        data: dict[str, Any] = {"n": len(self.turns), **turn.as_dict()}
        if asr:
            data["asr"] = asr
        if entry:
            data["entry"] = entry
        if parse and turn.input.get("say") is not None and turn.intent != "nlu_fallback":
            data["intent_ranking"] = [
                {"name": r["name"], "confidence": round(float(r["confidence"]), 4)}
                for r in parse.get("intent_ranking", [])[:5]]
        if outcome:
            data["actions"] = outcome.actions
            data["lock_wait_s"] = round(outcome.lock_wait_s, 4)
            data["queue_wait_s"] = round(outcome.queue_wait_s, 4)
            data["dialogue_s"] = round(outcome.dialogue_s, 4)
            data["prompt_names"] = outcome.prompt_names
            data["slots"] = {k: mask_value(v) for k, v in outcome.changed.items()
                             if k != "handoff"}
        if self._nlu_s is not None:  # the stages of a turn (docs/metrics.md)
            data["nlu_s"], self._nlu_s = round(self._nlu_s, 4), None
        self._emit(TurnTaken, **data)
        self._log_verification(before)
        heard_nothing = bool(parse and parse.get("nothing_said"))  # no utterance to review
        for signal in _signals(turn, data.get("intent_ranking", []), before, self.slots,
                               heard_nothing):
            self._emit(MisrouteSignal, signal=signal, turn=data["n"], intent=turn.intent)
        self._route_if_ended()

    def _log_verification(self, before: dict[str, Any]) -> None:
        now = self.slots
        if now.get("verified") is True and before.get("verified") is not True:
            state = "verified"
        elif now.get("verified") is False and before.get("verified") is not False:
            state = "failed"
        elif (now.get("failed_attempts") or 0) > (before.get("failed_attempts") or 0):
            state = "attempt_failed"
        elif now.get("customer_id") and now.get("customer_id") != before.get("customer_id"):
            state = "identified"
        else:
            return
        self._emit(VerificationChanged, state=state, customer_id=now.get("customer_id"),
                   by=_identified_by(now.get("account_ref")),
                   failed_attempts=int(now.get("failed_attempts") or 0))

    def _route_if_ended(self) -> None:
        bundle = self.handoff_bundle()
        if bundle and not self._routed:
            self._routed = True
            self._emit(Routed, queue=bundle.queue, reason=bundle.reason,
                       priority=bundle.priority, topic=bundle.topic, skills=bundle.skills,
                       handoff=bundle.as_dict())

    @property
    def dialect(self) -> str:
        """Cantonese if heard at all (it sets an agent skill), else the most frequent
        non-Mandarin dialect, else Mandarin."""
        standard = standard_dialect(self.locale)
        heard = Counter(t.dialect for t in self.turns if t.dialect and t.dialect != standard)
        if "yue" in heard:
            return "yue"
        return heard.most_common(1)[0][0] if heard else standard

    @property
    def outcome(self) -> str:
        if self.handoff:
            return "escalated"
        return "self_service" if self.served else "hangup"

    @property
    def topic(self) -> str | None:
        handoff = self.handoff or {}
        return handoff.get("topic") or self.slots.get("topic") or (
            self.served[-1] if self.served else None)

    def transcript(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = [{"speaker": "bot", "text": p} for p in self.greeting]
        for turn in self.turns:
            lines.append({"speaker": "caller", **turn.input})
            lines += [{"speaker": "bot", "text": p} for p in turn.prompts]
        return lines

    def handoff_bundle(self) -> HandoffBundle | None:
        """Everything an agent needs so the caller never repeats themself (SPEC rule 5)."""
        decision = self.handoff
        if not decision:
            return None
        slots = self.slots
        return HandoffBundle(
            call_id=self.call_id,
            external_id=self.external_id,
            caller_id=self.caller_id,
            locale=self.locale,
            dialect=self.dialect,
            queue=decision["queue"],
            skills=skills_for(self.locale, self.dialect),
            priority=decision["priority"],
            reason=decision["reason"],
            topic=decision.get("topic"),
            intent_history=[
                {"turn": i + 1, "intent": t.intent, "confidence": t.confidence}
                for i, t in enumerate(self.turns) if t.intent
            ],
            slots={k: slots.get(k) for k in ("topic", "card_type", "currency", "account_ref",
                                             "customer_id", "vip") if slots.get(k) is not None},
            transcript=self.transcript(),
            verification={
                "verified": slots.get("verified") is True,
                "identified_by": _identified_by(slots.get("account_ref")),
                "failed_attempts": int(slots.get("failed_attempts") or 0),
            },
            started_at=self.started_at.isoformat(),
        )

    def result(self) -> CallReport:
        """What the call has come to so far (``as_dict``: what ``ivr simulate --json``
        prints)."""
        return CallReport(
            call_id=self.call_id, caller=self.caller_id, locale=self.locale,
            dialect=self.dialect, greeting=list(self.greeting),
            turns=[t.as_dict() for t in self.turns], outcome=self.outcome,
            intent=self.topic, served=list(self.served),
            external_id=self.external_id or None,  # an empty id is none
            handoff=self.handoff_bundle())


def mask_value(value: Any) -> Any:
    """A slot value fit for the log: digit runs in text masked, structures walked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    return value


def _signals(turn: Turn, ranking: list[dict[str, Any]], before: dict[str, Any],
             after: dict[str, Any], heard_nothing: bool = False) -> list[str]:
    """Why a trainer might want to look at this turn (misroute signals)."""
    signals = []
    if turn.correction_of:
        signals.append("correction")
    if turn.input.get("masked") or heard_nothing:
        pass  # masked whole (said during an entry), or a hesitation: nothing to label
    elif turn.intent == "nlu_fallback":
        signals.append("no_match")
    elif ranking and turn.input.get("say") is not None:
        top = ranking[0]["confidence"]
        second = ranking[1]["confidence"] if len(ranking) > 1 else 0.0
        if top < LOW_CONFIDENCE or top - second < CLOSE_TOP_TWO:
            signals.append("low_confidence")
    if turn.intent == "human_agent" and before.get("topic_served"):
        signals.append("agent_after_answer")
    reason = (after.get("handoff") or {}).get("reason")
    if reason in ("no_match", "no_input") and not (before.get("handoff") or {}):
        signals.append(f"escalated_{reason}")
    return signals


def _identified_by(account_ref: str | None) -> str | None:
    if account_ref == "caller_id":
        return "caller_id"
    if account_ref and account_ref != "failed":
        return "card"
    return None
