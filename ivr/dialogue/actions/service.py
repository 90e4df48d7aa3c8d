"""Serving a topic: an account topic for a verified caller (the bank's answer said back), a
knowledge topic for anyone (from knowledge/<locale>.yml), and ``action_serve``, which runs
when verification ends."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from ivr.dialogue.actions.base import (
    BANK_FAILED,
    OFFER_CARDS,
    BankAction,
    entity_of,
    escalate,
    escalate_locked,
)
from ivr.dialogue.bank import DEBIT, BankAdapter, BankUnavailable
from ivr.dialogue.knowledge import KnowledgeBase


async def serve(
    dispatcher: CollectingDispatcher, bank: BankAdapter, kb: KnowledgeBase, tracker: Tracker,
    topic: str, lost_card: str | None = None,
) -> list[EventType]:
    """Serve an account topic for a verified caller; a bank that fails hands the call to
    an agent (``engine_error``: the caller is never left alone)."""
    try:
        return await _serve(dispatcher, bank, kb, tracker, topic, lost_card)
    except BankUnavailable:
        return escalate(dispatcher, tracker, kb, BANK_FAILED, topic)


async def _serve(
    dispatcher: CollectingDispatcher, bank: BankAdapter, kb: KnowledgeBase, tracker: Tracker,
    topic: str, lost_card: str | None = None,
) -> list[EventType]:
    customer = tracker.get_slot("customer_id")
    events: list[EventType] = [SlotSet("topic_served", True)]
    if topic == "check_balance":
        last4, amount = await bank.balance(customer)
        dispatcher.utter_message(response="utter_balance", last4=last4,
                                 amount=kb.labels.amount(amount))
    elif topic == "recent_transactions":
        last4, items = await bank.recent_transactions(customer, limit=3)
        if not items:
            dispatcher.utter_message(response="utter_no_transactions")
        else:
            dispatcher.utter_message(response="utter_transactions_intro", last4=last4,
                                     count=len(items))
            for t in items:
                dispatcher.utter_message(response="utter_transaction", date=kb.labels.date(t.date),
                                         description=kb.labels.memo(t.description),
                                         amount=kb.labels.amount(t.amount))
    elif topic == "credit_card_bill":
        bill = await bank.credit_card_bill(customer)
        if bill is None:
            dispatcher.utter_message(response="utter_no_credit_card")
        else:
            dispatcher.utter_message(response="utter_bill", last4=bill.last4,
                                     amount=kb.labels.amount(bill.amount),
                                     minimum=kb.labels.amount(bill.minimum),
                                     due_day=bill.due_day)
    elif topic == "report_lost_card":
        card_type = lost_card or tracker.get_slot("lost_card") or DEBIT
        last4 = await bank.freeze_card(customer, card_type)
        if last4 is None:
            dispatcher.utter_message(response="utter_no_such_card",
                                     card_type=kb.labels.card_type(card_type))
        else:
            dispatcher.utter_message(response="utter_card_frozen", last4=last4,
                                     card_type=kb.labels.card_type(card_type))
            return [*events, SlotSet("pending_offer", OFFER_CARDS)]
    elif topic == "activate_card":
        activated = await bank.activate_card(customer)
        if activated is None:
            dispatcher.utter_message(response="utter_nothing_to_activate")
        else:
            dispatcher.utter_message(response="utter_card_activated", last4=activated[0],
                                     card_type=kb.labels.card_type(activated[1]))
    dispatcher.utter_message(response="utter_anything_else")
    return events


def answer(dispatcher: CollectingDispatcher, kb: KnowledgeBase, topic: str,
           tracker: Tracker) -> None:
    """Answer a knowledge topic from knowledge/<locale>.yml (no verification: nothing
    about an account is said)."""
    said = tracker.latest_message.get("text") or ""
    currency = entity_of(tracker, "currency") or tracker.get_slot("currency")
    for prompt in kb.answer(topic, said, currency):
        dispatcher.utter_message(response=prompt.response, **prompt.values)


class ActionServe(BankAction):
    """Runs when verification ends: serve the topic, or escalate if it failed."""

    def name(self) -> str:
        return "action_serve"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        decided = tracker.get_slot("handoff")
        if decided:  # the bank failed during verification (ValidateVerificationForm)
            return escalate(dispatcher, tracker, self.kb, decided["reason"])
        if tracker.get_slot("verified") is not True:
            if await self._locked(tracker):  # locked now (by this call's failures or earlier)
                return escalate_locked(dispatcher, tracker, self.kb)
            return escalate(dispatcher, tracker, self.kb, "verification_failed")
        return await serve(dispatcher, self.bank, self.kb, tracker, tracker.get_slot("topic"))
