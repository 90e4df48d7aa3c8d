"""One phone call, as the dialogue sees it: caller inputs in, prompts and a result out.

Transports (and ``ivr simulate`` / ``ivr chat``) turn what they receive into ``say``,
``press``, ``silence`` and ``hangup``; this class knows nothing of sockets. Everything it
records is masked here, at the one point where caller input enters the engine's records.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ivr.dialogue.engine import DialogueEngine, TurnOutcome
from ivr.errors import IvrError
from ivr.handoff import skills_for
from ivr.masking import mask_card, mask_text
from ivr.nlu.normalizer import MANDARIN
from ivr.routing import priority_for, queue_for

log = logging.getLogger(__name__)

# Said when the dialogue layer itself fails, so it cannot come from the domain's prompts.
FAILURE_PROMPT = "抱歉，系统出了点问题，正在为您转接人工服务，请稍候。"
AGENT_KEY = "0"  # DTMF 0 asks for an agent in every state (SPEC rule 2)
DTMF_KEYS = re.compile(r"[0-9*#]+")


def standard_dialect(locale: str) -> str:
    """The dialect a parse reports when it names none (only zh's NLU detects dialects)."""
    return MANDARIN if locale == "zh" else "standard"


class InputError(IvrError):
    """Caller input the engine cannot take (e.g. DTMF that is not a key)."""


def _event(intent: str, text: str, entities: list[dict[str, Any]] | None = None) -> dict:
    """Parse data for inputs that are not speech: they skip the classifier."""
    return {"text": text, "intent": {"name": intent, "confidence": 1.0},
            "intent_ranking": [{"name": intent, "confidence": 1.0}], "entities": entities or []}


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

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


class Call:
    """A call in progress. Not thread-safe: one input at a time, as a caller speaks."""

    def __init__(self, engine: DialogueEngine, caller_id: str = "", locale: str = "zh",
                 call_id: str | None = None, failure_prompt: str = FAILURE_PROMPT) -> None:
        self.engine = engine
        self.failure_prompt = failure_prompt
        self.caller_id = caller_id
        self.locale = locale
        self.call_id = call_id or uuid.uuid4().hex
        self.started_at = datetime.now(timezone.utc)
        self.greeting: list[str] = []
        self.turns: list[Turn] = []
        self.slots: dict[str, Any] = {}
        self.served: list[str] = []
        self.hung_up = False
        self.prompt_names: list[str | None] = []  # the domain responses last said, in order
        self._engine_failure: dict[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self.hung_up or bool(self.slots.get("call_ended")) or self.handoff is not None

    @property
    def handoff(self) -> dict[str, Any] | None:
        return self._engine_failure or self.slots.get("handoff")

    async def start(self) -> list[str]:
        entities = [{"entity": "caller_id", "value": self.caller_id},
                    {"entity": "locale", "value": self.locale}]
        outcome = await self._advance(_event("call_start", "/call_start", entities))
        self.greeting = outcome.prompts if outcome else [self.failure_prompt]
        if self.ended:
            await self.engine.end(self.call_id)
        return self.greeting

    async def say(self, text: str) -> Turn:
        self._check_open()
        try:
            parse = await self.engine.parse(text)
        except Exception:
            log.exception("understanding failed on call %s; escalating", self.call_id)
            self.fail_over()
            return await self._finish_turn(Turn({"say": mask_text(text)}), None)
        turn = Turn(
            {"say": mask_text(text)},
            intent=parse["intent"]["name"],
            confidence=round(float(parse["intent"]["confidence"]), 4),
            normalized=mask_text(parse.get("normalized", text)),
            dialect=parse.get("dialect", standard_dialect(self.locale)),
            entities=[{"entity": e["entity"], "value": mask_text(str(e["value"]))}
                      for e in parse.get("entities", [])],
        )
        return await self._turn(turn, parse)

    async def press(self, keys: str) -> Turn:
        """Keys pressed by the caller; a trailing ``#`` ends the entry."""
        keys = str(keys)
        if not DTMF_KEYS.fullmatch(keys):
            raise InputError(f"DTMF must be keys 0-9, * or # (got {len(keys)} other characters)")
        digits = keys.rstrip("#")
        if digits == AGENT_KEY:
            return await self._turn(Turn({"dtmf": digits}), _event("human_agent", "/human_agent"))
        parse = _event("dtmf", "/dtmf", [{"entity": "digits", "value": digits}])
        return await self._turn(Turn({"dtmf": self._mask_keys(digits)}, "dtmf", 1.0), parse)

    async def unintelligible(self, heard: str = "") -> Turn:
        """Speech the recogniser could not match to anything the caller may say here."""
        turn = Turn({"say": mask_text(heard)}, "nlu_fallback", 0.0)
        return await self._turn(turn, _event("nlu_fallback", heard or "/nlu_fallback"))

    async def silence(self) -> Turn:
        return await self._turn(Turn({"silence": True}, "no_input", 1.0),
                                _event("no_input", "/no_input"))

    async def hangup(self, record: bool = True, heard: str = "") -> None:
        """The caller hung up (``heard``: what they were saying as they did);
        ``record=False`` when the input just ran out (no turn)."""
        self.hung_up = True
        if record:
            said = {"heard": mask_text(heard)} if heard else {}
            self.turns.append(Turn({"hangup": True, **said}))
        await self.engine.end(self.call_id)

    def _mask_keys(self, digits: str) -> str:
        """Keys typed for verification are secrets: a PIN entirely, a card but its last 4."""
        if self.slots.get("active_loop") == "verification_form":
            requested = self.slots.get("requested_slot")
            if requested == "verified":
                return "*" * len(digits)
            if requested == "account_ref":
                return mask_card(digits)
        return mask_text(digits)

    def _check_open(self) -> None:
        if self.ended:
            raise InputError("the call has already ended")

    async def _turn(self, turn: Turn, parse: dict[str, Any]) -> Turn:
        self._check_open()
        return await self._finish_turn(turn, await self._advance(parse))

    async def _finish_turn(self, turn: Turn, outcome: TurnOutcome | None) -> Turn:
        if outcome:
            turn.prompts = outcome.prompts
            turn.correction_of = outcome.changed.get("correction_of")
        else:
            turn.prompts = [self.failure_prompt]
        self.turns.append(turn)
        if self.ended:
            await self.engine.end(self.call_id)
        return turn

    def fail_over(self) -> None:
        """The dialogue layer failed: the caller must never be left alone, so go to an agent."""
        topic, vip = self.slots.get("topic"), bool(self.slots.get("vip"))
        self._engine_failure = {"queue": queue_for(topic, vip), "reason": "engine_error",
                                "topic": topic, "priority": priority_for(topic, vip)}

    async def _advance(self, parse: dict[str, Any]) -> TurnOutcome | None:
        """One step of the dialogue; None (and escalated) when the dialogue layer failed."""
        try:
            outcome = await self.engine.handle(self.call_id, parse)
        except Exception:
            log.exception("dialogue failed on call %s; escalating", self.call_id)
            self.fail_over()
            self.prompt_names = [None]
            return None
        self.slots = outcome.slots
        self.prompt_names = outcome.prompt_names
        topic = self.slots.get("topic")
        if self.slots.get("topic_served") and topic and topic not in self.served:
            self.served.append(topic)
        return outcome

    # --- what the call amounts to -------------------------------------------------------
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

    def handoff_bundle(self) -> dict[str, Any] | None:
        """Everything an agent needs so the caller never repeats themself (SPEC rule 5)."""
        decision = self.handoff
        if not decision:
            return None
        slots = self.slots
        return {
            "call_id": self.call_id,
            "caller_id": self.caller_id,
            "locale": self.locale,
            "dialect": self.dialect,
            "queue": decision["queue"],
            "skills": skills_for(self.locale, self.dialect),
            "priority": decision["priority"],
            "reason": decision["reason"],
            "topic": decision.get("topic"),
            "intent_history": [
                {"turn": i + 1, "intent": t.intent, "confidence": t.confidence}
                for i, t in enumerate(self.turns) if t.intent
            ],
            "slots": {k: slots.get(k) for k in ("topic", "card_type", "currency", "account_ref",
                                               "customer_id", "vip") if slots.get(k) is not None},
            "transcript": self.transcript(),
            "verification": {
                "verified": slots.get("verified") is True,
                "identified_by": _identified_by(slots.get("account_ref")),
                "failed_attempts": int(slots.get("failed_attempts") or 0),
            },
            "started_at": self.started_at.isoformat(),
        }

    def result(self) -> dict[str, Any]:
        """The call's outcome, in the shape ``ivr simulate --json`` prints."""
        result: dict[str, Any] = {
            "call_id": self.call_id,
            "caller": self.caller_id,
            "locale": self.locale,
            "dialect": self.dialect,
            "greeting": self.greeting,
            "turns": [t.as_dict() for t in self.turns],
            "outcome": self.outcome,
            "intent": self.topic,
            "served": self.served,
        }
        bundle = self.handoff_bundle()
        if bundle:
            result.update({k: bundle[k] for k in ("queue", "skills", "priority", "reason")})
            result["handoff"] = bundle
        return result


def _identified_by(account_ref: str | None) -> str | None:
    if account_ref == "caller_id":
        return "caller_id"
    if account_ref and account_ref != "failed":
        return "card"
    return None
