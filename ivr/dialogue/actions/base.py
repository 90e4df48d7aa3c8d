"""What every custom action shares: the base with the bank at hand, the slot readings,
and ``escalate``, the one way a call goes to a human queue."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from ivr.dialogue.bank import BankAdapter
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.lockout import Lockout, caller_key, customer_key
from ivr.dialogue.routing import priority_for, queue_for

MAX_ATTEMPTS = 3          # wrong PINs or card numbers before escalation
MAX_UNCLEAR_TURNS = 2     # no-match / no-input turns in a row before escalation (rule 1)
FORM = "verification_form"
OFFER_CARDS = "cards"
BANK_FAILED = "engine_error"  # the routing contract's reason when a system the call needs fails


def intent_of(tracker: Tracker) -> str:
    return (tracker.latest_message.get("intent") or {}).get("name") or ""


def entity_of(tracker: Tracker, name: str) -> str | None:
    return next(tracker.get_latest_entity_values(name), None)


def form_active(tracker: Tracker) -> bool:
    return (tracker.active_loop or {}).get("name") == FORM


def understood() -> list[EventType]:
    """The caller was understood: the no-match/no-input count starts again."""
    return [SlotSet("unclear_turns", 0), SlotSet("clarify_options", None)]


def escalate(
    dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase, reason: str,
    topic: str | None = None, said: str | None = None,
) -> list[EventType]:
    """Hand the call to a human queue. The engine builds the full bundle from the slots.
    ``said``: a knowledge-base template ({queue}) said instead of ``utter_transfer``."""
    topic = topic if topic is not None else tracker.get_slot("topic")
    vip = bool(tracker.get_slot("vip"))
    queue = queue_for(topic, vip)
    if said:
        dispatcher.utter_message(text=said.format(queue=kb.labels.queue(queue)))
    else:
        dispatcher.utter_message(response="utter_transfer", queue_name=kb.labels.queue(queue))
    handoff = {
        "queue": queue,
        "reason": reason,
        "priority": priority_for(topic, vip),
        "topic": topic,
    }
    return [SlotSet("handoff", handoff), SlotSet("call_ended", True), *end_form(tracker)]


def end_form(tracker: Tracker) -> list[EventType]:
    return [ActiveLoop(None)] if form_active(tracker) else []


def continue_form(tracker: Tracker) -> list[EventType]:
    """After an interruption mid-verification, ask for the PIN or card again."""
    return [FollowupAction(FORM)] if form_active(tracker) else []


def escalate_locked(dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase,
                    topic: str | None = None) -> list[EventType]:
    """Verification by phone is locked for this account: an agent serves the caller."""
    return escalate(dispatcher, tracker, kb, "verification_locked", topic,
                    said=kb.labels.verification_locked)


def _lock_key(tracker: Tracker) -> str | None:
    """What this caller's verification failures count against (ivr/dialogue/lockout.py):
    the identified account, else an unknown caller's caller id, else nothing."""
    customer = tracker.get_slot("customer_id")
    if customer:
        return customer_key(customer)
    caller = tracker.get_slot("caller_id")
    return caller_key(caller) if caller else None


class BankAction(Action):
    """An action with the bank, the knowledge base and the verification lockout at hand."""

    def __init__(self, bank: BankAdapter, kb: KnowledgeBase, lockout: Lockout) -> None:
        self.bank = bank
        self.kb = kb
        self.lockout = lockout

    async def _locked(self, tracker: Tracker) -> bool:
        key = _lock_key(tracker)
        return bool(key) and (await self.lockout.status(key)).locked
