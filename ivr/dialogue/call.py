"""One phone call, as the dialogue sees it: caller inputs in, prompts and a result out.

Every source of input (the voice session, ``ivr simulate``, ``ivr chat``, ``ivr replay``)
turns what it receives into one of the types in ``ivr.core.inputs`` and hands it to
``Call.take``; ``Call.finish`` is the one way a call ends. This class knows nothing of
sockets. Everything it records is masked here, at the one point where caller input enters
the engine's records; what it records and amounts to is ``CallRecord``
(ivr/dialogue/call_record.py).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from ivr.core.events import (
    CallEnded,
    CallStarted,
    Emit,
    Failed,
    Greeted,
    HandoffDelivered,
    HungUp,
    clip,
)
from ivr.core.inputs import CallerInput, Choice, Hangup, Keys, Say, Silence, Unintelligible
from ivr.core.masking import longest_number, mask_card, mask_entry, mask_text
from ivr.core.report import CallReport
from ivr.dialogue.call_record import CallRecord, Turn, standard_dialect
from ivr.dialogue.confidence import (
    NEVER_CONFIRMED,
    REJECTIONS,
    Band,
    asr_confidence,
    competing_topics,
)
from ivr.dialogue.engine import NO_MATCH_INTENT as NO_MATCH
from ivr.dialogue.engine import DialogueEngine, TurnOutcome
from ivr.dialogue.handoff import HandoffDesk
from ivr.dialogue.routing import priority_for, queue_for
from ivr.errors import IvrError

log = logging.getLogger(__name__)

# Said when the dialogue layer itself fails, so it cannot come from the domain's prompts.
FAILURE_PROMPT = "抱歉，系统出了点问题，正在为您转接人工服务，请稍候。"
AGENT_KEY = "0"  # DTMF 0 asks for an agent in every state (SPEC rule 2)
DTMF_KEYS = re.compile(r"[0-9*#]+")
SPOKEN_SECRET_DIGITS = 3  # digits said during an entry that make it a secret said aloud
CONFIRM_PROMPT = "ivr_confirm"  # the prompt name of "您是要…，对吗？" (locales: what follows)


class InputError(IvrError):
    """Caller input the engine cannot take (e.g. DTMF that is not a key)."""


def _event(intent: str, text: str, entities: list[dict[str, Any]] | None = None) -> dict:
    """Parse data for inputs that are not speech: they skip the classifier."""
    return {"text": text, "intent": {"name": intent, "confidence": 1.0},
            "intent_ranking": [{"name": intent, "confidence": 1.0}], "entities": entities or []}


class Call(CallRecord):
    """A call in progress, each step emitted masked as a typed event (ivr/core/events.py).
    Not thread-safe: one input at a time, as a caller speaks."""

    def __init__(self, engine: DialogueEngine, caller_id: str = "", locale: str = "zh",
                 call_id: str | None = None, failure_prompt: str = FAILURE_PROMPT,
                 transport: str = "api", emit: Emit | None = None,
                 external_id: str | None = None) -> None:
        self.engine = engine
        self.failure_prompt = failure_prompt
        self.caller_id = clip(caller_id, "caller id")  # chat, simulate: from outside
        self.locale = locale
        self.call_id = call_id or uuid.uuid4().hex
        self.external_id = external_id  # the telephony's own id: for correlation only
        self.transport = transport
        self._emit: Emit = emit or (lambda kind, **data: None)
        self.started_at = datetime.now(timezone.utc)
        self.greeting: list[str] = []
        self.turns: list[Turn] = []
        self.slots: dict[str, Any] = {}
        self.served: list[str] = []
        self.hung_up = False
        self.prompt_names: list[str | None] = []  # the domain responses last said, in order
        self._engine_failure: dict[str, Any] | None = None
        self._routed = False
        self._confirming: dict[str, Any] | None = None  # the parse "对吗？" asks about
        self._asked = 0  # times asked again
        self._nlu_s: float | None = None  # the last utterance's understanding took (metrics)

    @property
    def ended(self) -> bool:
        return self.hung_up or bool(self.slots.get("call_ended")) or self.handoff is not None

    @property
    def awaiting_secret_entry(self) -> bool:
        """The dialogue is asking for a card number or PIN: keys collect into one entry,
        and the caller's words and audio are kept out of the records (the voice layer)."""
        return self.slots.get("active_loop") == "verification_form"

    async def start(self) -> list[str]:
        self._emit(CallStarted, transport=self.transport, caller=self.caller_id,
                   locale=self.locale, model=self.engine.model_path.name,
                   **({"external_id": self.external_id} if self.external_id else {}))
        entities = [{"entity": "caller_id", "value": self.caller_id},
                    {"entity": "locale", "value": self.locale}]
        outcome = await self._advance(_event("call_start", "/call_start", entities))
        self.greeting = outcome.prompts if outcome else [self.failure_prompt]
        waited = {"lock_wait_s": round(outcome.lock_wait_s, 4)} if outcome else {}
        self._emit(Greeted, prompts=self.greeting, prompt_names=self.prompt_names,
                   actions=outcome.actions if outcome else [], **waited)
        self._route_if_ended()
        if self.ended:
            await self.engine.end(self.call_id)
        return self.greeting

    async def take(self, said: CallerInput) -> Turn:
        """The one way a caller's input reaches the dialogue; the turn it made."""
        match said:
            case Say(text, asr):
                return await self._say(text, asr)
            case Unintelligible(heard, asr):
                return await self._unintelligible(heard, asr)
            case Keys(keys):
                return await self._press(keys)
            case Choice(key, intent, entities):
                return await self._choose(key, intent, entities)
            case Silence():
                return await self._silence()
            case Hangup(heard):
                return await self._hangup(heard=heard)
        raise InputError(f"not a caller input: {type(said).__name__}")

    async def finish(self, acd: HandoffDesk | None = None, input_ran_out: bool = False,
                     **end: Any) -> CallReport:
        """The one way a call ends: hung up if still open (``input_ran_out``: a script or a
        log ran out, so no hang-up turn), the handoff delivered to the ACD when there is
        one (a failure is recorded, never raised), then the ``end`` event with ``end``'s
        figures. Returns the call's report."""
        if not self.ended:
            await self._hangup(record=not input_ran_out)
        report = self.result()
        if acd is not None and report.handoff:
            report = replace(report, delivery=await _delivered(acd, report.handoff.as_dict()))
            self._emit(HandoffDelivered, **report.delivery)
        self._emit(CallEnded, **replace(report, transport=self.transport).end_fields(), **end)
        return report

    async def _say(self, text: str, asr: dict[str, Any] | None = None) -> Turn:
        self._check_open()
        entry = self._entry()
        mask = self._masker(entry)
        said: dict[str, Any] = {"say": mask(text), **({"masked": entry} if entry else {})}
        asr = _masked_asr(asr, mask)
        try:
            started = time.perf_counter()
            parse = await self.engine.parse(text)
            self._nlu_s = time.perf_counter() - started
        except Exception:
            log.exception("understanding failed on call %s; escalating", self.call_id)
            self.fail_over("nlu")
            return await self._finish_turn(Turn(said), None, asr=asr)
        turn = Turn(
            said,
            intent=parse["intent"]["name"],
            confidence=round(float(parse["intent"]["confidence"]), 4),
            normalized=mask(parse.get("normalized", text)),
            dialect=parse.get("dialect", standard_dialect(self.locale)),
            entities=[{"entity": e["entity"], "value": mask(str(e["value"]))}
                      for e in parse.get("entities", [])],
        )
        if not entry:
            return await self._understood(turn, parse, asr)
        if turn.intent != "human_agent" and _spoken_secret(text):
            # The PIN or card said aloud: not understood (two in a row still escalate,
            # SPEC rule 1), and the caller is told to key it. Not even the dialogue's
            # tracker gets the words (other words it needs: a correction is re-routed by
            # them; it is forgotten when the call ends, engine.end).
            turn.intent, turn.confidence, turn.entities = "nlu_fallback", 1.0, []
            parse = _event("nlu_fallback", said["say"])
            return await self._turn(turn, parse, asr, keypad=entry)
        return await self._turn(turn, parse, asr)

    async def _understood(self, turn: Turn, parse: dict[str, Any],
                          asr: dict[str, Any] | None) -> Turn:
        """Act on an understanding, confirm it or reject it, by how sure the classifier
        (and the recogniser) was; while a confirmation is pending, this is its answer."""
        bands = self.engine.bands
        band = bands.band(turn.intent or NO_MATCH, turn.confidence or 0.0,
                          asr_confidence(asr))
        turn.band = band.value
        if self._confirming is not None:
            return await self._confirmation_answered(turn, parse, asr, band)
        if band is Band.CONFIRM and not competing_topics(parse.get("intent_ranking") or []):
            self._confirming, self._asked = parse, 0  # (two close topics: "A 还是 B？")
            return self._ask_to_confirm(turn, parse, asr)
        if band is Band.REJECT and turn.intent not in REJECTIONS:
            # Heard as a yes, a no or a menu word, but not clearly: asked again, a strike.
            parse = {**parse, "intent": {"name": NO_MATCH, "confidence": turn.confidence}}
        return await self._turn(turn, parse, asr)

    async def _confirmation_answered(self, turn: Turn, parse: dict[str, Any],
                                     asr: dict[str, Any] | None, band: Band) -> Turn:
        """Only an explicit yes or no answers "您是要…，对吗？"; a clear new request (or
        转人工) replaces the question; anything else asks once more, then is a no-match."""
        held = self._confirming
        assert held is not None
        if band is Band.ACCEPT and turn.intent == "affirm":
            turn.confirmed = held["intent"]["name"]
            return await self._turn(turn, held, asr)
        if band is Band.ACCEPT and turn.intent == "deny":
            return await self._turn(turn, _event(NO_MATCH, turn.input["say"]), asr)
        if band is Band.ACCEPT and turn.intent not in NEVER_CONFIRMED:
            return await self._turn(turn, parse, asr)
        if self._asked < 1:
            self._asked += 1
            return self._ask_to_confirm(turn, held, asr, again=True)
        return await self._turn(turn, _event(NO_MATCH, turn.input["say"]), asr)

    def _ask_to_confirm(self, turn: Turn, parse: dict[str, Any], asr: dict[str, Any] | None,
                        again: bool = False) -> Turn:
        """"您是要查询信用卡账单，对吗？": the dialogue is not advanced until it is answered."""
        bands, intent = self.engine.bands, parse["intent"]["name"]
        kb = self.engine.kb
        label = bands.labels.get(intent) or (kb.labels.topics.get(intent) if kb else None) \
            or intent
        turn.prompts = [(bands.again if again else bands.ask).format(label=label)]
        self.prompt_names = [CONFIRM_PROMPT]
        self.turns.append(turn)
        self._log_turn(turn, None, parse, asr, None, dict(self.slots))
        return turn

    async def _press(self, keys: str) -> Turn:
        """Keys pressed by the caller; a trailing ``#`` ends the entry."""
        keys = str(keys)
        if not DTMF_KEYS.fullmatch(keys):
            raise InputError(f"DTMF must be keys 0-9, * or # (got {len(keys)} other characters)")
        digits = keys.rstrip("#")
        if digits == AGENT_KEY:
            return await self._turn(Turn({"dtmf": digits}), _event("human_agent", "/human_agent"))
        parse = _event("dtmf", "/dtmf", [{"entity": "digits", "value": digits}])
        entry = self._entry()
        masked = "*" * len(digits) if entry == "pin" else \
            mask_card(digits) if entry == "card" else mask_text(digits)
        return await self._turn(Turn({"dtmf": masked}, "dtmf", 1.0), parse, entry=entry)

    async def _choose(self, key: str, intent: str,
                     entities: Sequence[tuple[str, str]] = ()) -> Turn:
        """A key menu choice (ivr/voice/keypad.py): the request the key names, understood
        for sure, as if said clearly; verification and routing follow as for speech."""
        if len(key) != 1 or key == "#" or not DTMF_KEYS.fullmatch(key):
            raise InputError("a menu choice is one key: 0-9 or *")
        if self._entry():  # keys typed now are a PIN or card number: never a choice
            raise InputError("no menu while a PIN or card number is keyed")
        found = [{"entity": name, "value": value} for name, value in entities]
        turn = Turn({"dtmf": key, "menu": intent}, intent, 1.0, entities=found)
        return await self._turn(turn, _event(intent, f"/{intent}", found))

    async def _unintelligible(self, heard: str = "",
                              asr: dict[str, Any] | None = None) -> Turn:
        """Speech the recogniser could not match to anything the caller may say here."""
        entry, masked = self._entry(), self._masker(self._entry())(heard)
        turn = Turn({"say": masked, "unmatched": True, **({"masked": entry} if entry else {})},
                    "nlu_fallback", 0.0)
        return await self._turn(turn, _event("nlu_fallback", masked or "/nlu_fallback"),
                                _masked_asr(asr, self._masker(entry)))

    async def _silence(self) -> Turn:
        return await self._turn(Turn({"silence": True}, "no_input", 1.0),
                                _event("no_input", "/no_input"))

    async def _hangup(self, record: bool = True, heard: str = "") -> Turn:
        """The caller hung up (``heard``: what they were saying as they did);
        ``record=False`` when the input just ran out (no turn)."""
        self.hung_up = True
        said = {"heard": self._masker(self._entry())(heard)} if heard else {}
        turn = Turn({"hangup": True, **said})
        if record:
            self.turns.append(turn)
        self._emit(HungUp, **said)
        await self.engine.end(self.call_id)
        return turn

    def _entry(self) -> str | None:
        """What keys typed now are: a PIN (secret entirely), a card (all but its last 4
        digits secret) or neither."""
        if self.slots.get("active_loop") == "verification_form":
            return {"verified": "pin", "account_ref": "card"}.get(
                self.slots.get("requested_slot") or "")
        return None

    @staticmethod
    def _masker(entry: str | None) -> Callable[[str], str]:
        """How caller words are masked: whole while a PIN or card number is collected
        (whatever the recogniser made of the digits), else their long numbers."""
        return mask_entry if entry else mask_text

    def _check_open(self) -> None:
        if self.ended:
            raise InputError("the call has already ended")

    async def _turn(self, turn: Turn, parse: dict[str, Any], asr: dict[str, Any] | None = None,
                    entry: str | None = None, keypad: str | None = None) -> Turn:
        self._check_open()
        self._confirming = None  # whatever reaches the dialogue settles a confirmation
        before = dict(self.slots)
        outcome = await self._advance(parse)
        if outcome and keypad:
            outcome = self._ask_for_keys(outcome, keypad)
        return await self._finish_turn(turn, outcome, parse, asr, entry, before)

    def _ask_for_keys(self, outcome: TurnOutcome, entry: str) -> TurnOutcome:
        """"Not understood" becomes "key it in, for your safety" (the form asks again)."""
        # A PIN or card number said aloud is refused: secrets are keyed (docs/dialogue.md).
        # The words are the locale's knowledge labels, not the domain: no retraining.
        kb = self.engine.kb
        if kb is None:
            return outcome
        prompt = kb.labels.keyed_secrets[entry]
        said = [(prompt, None) if name == "utter_not_understood" else (text, name)
                for text, name in zip(outcome.prompts, outcome.prompt_names, strict=False)]
        self.prompt_names = [name for _, name in said]
        return replace(outcome, prompts=[text for text, _ in said],
                       prompt_names=self.prompt_names)

    async def _finish_turn(self, turn: Turn, outcome: TurnOutcome | None,
                           parse: dict[str, Any] | None = None, asr: dict[str, Any] | None = None,
                           entry: str | None = None, before: dict[str, Any] | None = None) -> Turn:
        if outcome:
            turn.prompts = outcome.prompts
            turn.correction_of = outcome.changed.get("correction_of")
        else:
            turn.prompts = [self.failure_prompt]
        self.turns.append(turn)
        self._log_turn(turn, outcome, parse, asr, entry, before or {})
        if self.ended:
            await self.engine.end(self.call_id)
        return turn

    def fail_over(self, error: str = "dialogue") -> None:
        """The dialogue layer failed: the caller must never be left alone, so go to an agent."""
        topic, vip = self.slots.get("topic"), bool(self.slots.get("vip"))
        self._engine_failure = {"queue": queue_for(topic, vip), "reason": "engine_error",
                                "topic": topic, "priority": priority_for(topic, vip)}
        self._emit(Failed, error=error)
        self._route_if_ended()

    async def _advance(self, parse: dict[str, Any]) -> TurnOutcome | None:
        """One step of the dialogue; None (and escalated) when the dialogue layer failed."""
        try:
            outcome = await self.engine.handle(self.call_id, parse)
        except Exception:
            log.exception("dialogue failed on call %s; escalating", self.call_id)
            self.fail_over("dialogue")
            self.prompt_names = [None]
            return None
        self.slots = outcome.slots
        self.prompt_names = outcome.prompt_names
        topic = self.slots.get("topic")
        if self.slots.get("topic_served") and topic and topic not in self.served:
            self.served.append(topic)
        return outcome


def _spoken_secret(text: str) -> bool:
    """Digits said during an entry; or a masked entry's stars (``ivr replay`` replays the
    log's transcript: what they hid was refused)."""
    return longest_number(text) >= SPOKEN_SECRET_DIGITS or (
        bool(text.strip()) and not text.replace("*", "").strip())


def _masked_asr(asr: dict[str, Any] | None, mask: Callable[[str], str]) -> dict[str, Any] | None:
    """How the recogniser heard it, masked like the words (the voice session masks it too:
    this holds for any caller of ``say``)."""
    if not asr:
        return asr
    masked = {**asr, **({"raw": mask(str(asr["raw"]))} if "raw" in asr else {})}
    if asr.get("alternatives"):
        masked["alternatives"] = [{**a, "text": mask(str(a.get("text", "")))}
                                  for a in asr["alternatives"]]
    return masked


async def _delivered(acd: HandoffDesk, bundle: dict[str, Any]) -> dict[str, Any]:
    try:
        delivery = (await acd.deliver(bundle)).as_dict()
    except Exception as e:
        log.exception("call %s: handoff delivery failed", bundle.get("call_id"))
        return {"status": "failed", "error": type(e).__name__}
    if delivery["status"] != "delivered":
        log.error("call %s: handoff not delivered: %s", bundle.get("call_id"),
                  delivery.get("error"))
    return delivery
