"""The bank's call flows, as Rasa custom actions run in-process.

Rules in ``dialogue/rules.yml`` say which action answers which input; these actions decide
what that means for the call: verify first, serve, clarify, re-route or escalate. Every
escalation goes through ``_escalate`` and sets the ``handoff`` slot, which the engine turns
into the handoff bundle. Actions get the bank and knowledge base injected, never globals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from ivr.bank import CREDIT, DEBIT, BankAdapter, BankUnavailable
from ivr.dialogue.confidence import competing_topics
from ivr.dialogue.lockout import Lockout, MemoryLockout, caller_key, customer_key
from ivr.knowledge import KnowledgeBase
from ivr.masking import mask_card
from ivr.routing import FOLLOW_UPS, TOPICS, Service, priority_for, queue_for

MAX_ATTEMPTS = 3          # wrong PINs or card numbers before escalation
MAX_UNCLEAR_TURNS = 2     # no-match / no-input turns in a row before escalation (rule 1)
FORM = "verification_form"
OFFER_CARDS = "cards"
BANK_FAILED = "engine_error"  # the routing contract's reason when a system the call needs fails


def _intent(tracker: Tracker) -> str:
    return (tracker.latest_message.get("intent") or {}).get("name") or ""


def _entity(tracker: Tracker, name: str) -> str | None:
    return next(tracker.get_latest_entity_values(name), None)


def _form_active(tracker: Tracker) -> bool:
    return (tracker.active_loop or {}).get("name") == FORM


def _understood() -> list[EventType]:
    """The caller was understood: the no-match/no-input count starts again."""
    return [SlotSet("unclear_turns", 0), SlotSet("clarify_options", None)]


def _escalate(
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
    return [SlotSet("handoff", handoff), SlotSet("call_ended", True), *_end_form(tracker)]


def _end_form(tracker: Tracker) -> list[EventType]:
    return [ActiveLoop(None)] if _form_active(tracker) else []


def _continue_form(tracker: Tracker) -> list[EventType]:
    """After an interruption mid-verification, ask for the PIN or card again."""
    return [FollowupAction(FORM)] if _form_active(tracker) else []


def _escalate_locked(dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase,
                     topic: str | None = None) -> list[EventType]:
    """Verification by phone is locked for this account: an agent serves the caller."""
    return _escalate(dispatcher, tracker, kb, "verification_locked", topic,
                     said=kb.labels.verification_locked)


def _lock_key(tracker: Tracker) -> str | None:
    """What this caller's verification failures count against (ivr/dialogue/lockout.py):
    the identified account, else an unknown caller's caller id, else nothing."""
    customer = tracker.get_slot("customer_id")
    if customer:
        return customer_key(customer)
    caller = tracker.get_slot("caller_id")
    return caller_key(caller) if caller else None


class _BankAction(Action):
    """An action with the bank, the knowledge base and the verification lockout at hand."""

    def __init__(self, bank: BankAdapter, kb: KnowledgeBase, lockout: Lockout) -> None:
        self.bank = bank
        self.kb = kb
        self.lockout = lockout

    async def _locked(self, tracker: Tracker) -> bool:
        key = _lock_key(tracker)
        return bool(key) and (await self.lockout.status(key)).locked


class ActionGreet(_BankAction):
    def name(self) -> str:
        return "action_greet"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        events: list[EventType] = []
        caller = tracker.get_slot("caller_id")
        try:
            info = await self.bank.customer_by_phone(caller) if caller else None
        except BankUnavailable:  # served as an unknown caller; account topics escalate
            info = None
        if info:  # identified by caller id (not yet verified): no card number needed
            events += [
                SlotSet("customer_id", info.customer_id),
                SlotSet("vip", info.vip),
                SlotSet("account_ref", "caller_id"),
            ]
        dispatcher.utter_message(response="utter_greet")
        return events


class ActionRoute(_BankAction):
    """A request, a follow-up ("那信用卡呢") or a correction ("我说的是信用卡")."""

    def name(self) -> str:
        return "action_route"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        intent = _intent(tracker)
        if intent in TOPICS and not tracker.get_slot("clarify_options"):
            options = _competing_topics(tracker)
            if options:
                return _clarify(dispatcher, tracker, self.kb, options)
        current = tracker.get_slot("topic")
        topic = intent if intent in TOPICS else self._resolve_fragment(tracker, current)
        if topic is None:
            card_type = _entity(tracker, "card_type")
            if card_type:
                dispatcher.utter_message(response="utter_which_service_for_card",
                                         card_type=self.kb.labels.card_type(card_type))
                return [*_understood(), *_continue_form(tracker)]
            return _not_understood(dispatcher, tracker, self.kb)

        events = _understood()
        served = tracker.get_slot("topic_served")
        # A different topic before the current one was served corrects a routing decision
        # (SPEC rule 4); trainers see it as a misroute signal.
        if current and not served and topic != current:
            events.append(SlotSet("correction_of", current))
            dispatcher.utter_message(response="utter_rerouted")
        events += [SlotSet("topic", topic), SlotSet("topic_served", False),
                   SlotSet("pending_offer", None)]

        if tracker.get_slot("agent_requested"):  # they asked for a person: route, don't serve
            return events + _escalate(dispatcher, tracker, self.kb, "caller_request", topic)
        service = TOPICS[topic].service
        if service is Service.AGENT:
            return events + _escalate(dispatcher, tracker, self.kb, "intent", topic)
        if service is Service.KNOWLEDGE:
            answer(dispatcher, self.kb, topic, tracker)
            dispatcher.utter_message(response="utter_anything_else")
            return [*events, SlotSet("topic_served", True), *_end_form(tracker)]
        lost_card = None
        if topic == "report_lost_card":
            # Only a card named for this request counts, not one from an earlier topic.
            lost_card = _entity(tracker, "card_type") or (
                tracker.get_slot("lost_card") if current == topic else None)
            if not lost_card:
                dispatcher.utter_message(response="utter_ask_which_card_lost")
                return events
            events.append(SlotSet("lost_card", lost_card))
        if tracker.get_slot("verified") is True:
            return events + await serve(dispatcher, self.bank, self.kb, tracker, topic,
                                        lost_card)
        if await self._locked(tracker):  # not even asked for a PIN (or a card)
            return events + _escalate_locked(dispatcher, tracker, self.kb, topic)
        if not _form_active(tracker):
            dispatcher.utter_message(response="utter_verify_first")
        return [*events, FollowupAction(FORM)]

    @staticmethod
    def _resolve_fragment(tracker: Tracker, current: str | None) -> str | None:
        """Which topic a bare card type or currency means, given the conversation so far."""
        card_type = _entity(tracker, "card_type")
        options = tracker.get_slot("clarify_options") or []
        if card_type and options:
            wanted = "credit_card_bill" if card_type == CREDIT else "recent_transactions"
            if wanted in options:
                return wanted
        if _entity(tracker, "currency"):
            return "exchange_rate"
        if current and card_type:
            return FOLLOW_UPS.get((current, card_type), current)
        return None


async def serve(
    dispatcher: CollectingDispatcher, bank: BankAdapter, kb: KnowledgeBase, tracker: Tracker,
    topic: str, lost_card: str | None = None,
) -> list[EventType]:
    """Serve an account topic for a verified caller; a bank that fails hands the call to
    an agent (``engine_error``: the caller is never left alone)."""
    try:
        return await _serve(dispatcher, bank, kb, tracker, topic, lost_card)
    except BankUnavailable:
        return _escalate(dispatcher, tracker, kb, BANK_FAILED, topic)


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
    currency = _entity(tracker, "currency") or tracker.get_slot("currency")
    for prompt in kb.answer(topic, said, currency):
        dispatcher.utter_message(response=prompt.response, **prompt.values)


class ActionServe(_BankAction):
    """Runs when verification ends: serve the topic, or escalate if it failed."""

    def name(self) -> str:
        return "action_serve"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        decided = tracker.get_slot("handoff")
        if decided:  # the bank failed during verification (ValidateVerificationForm)
            return _escalate(dispatcher, tracker, self.kb, decided["reason"])
        if tracker.get_slot("verified") is not True:
            if await self._locked(tracker):  # locked now (by this call's failures or earlier)
                return _escalate_locked(dispatcher, tracker, self.kb)
            return _escalate(dispatcher, tracker, self.kb, "verification_failed")
        return await serve(dispatcher, self.bank, self.kb, tracker, tracker.get_slot("topic"))


class ValidateVerificationForm(FormValidationAction, _BankAction):
    """Card number (unknown callers only) then PIN, three attempts each.

    Neither is stored: a card becomes its last four digits, a PIN becomes True or False.
    Every failure also counts across calls (``self.lockout``); a locked account's PIN is
    refused unchecked, and the form ends with ``verified`` False (``action_serve`` then
    escalates with ``verification_locked``).
    """

    def name(self) -> str:
        return "validate_verification_form"

    async def required_slots(self, domain_slots, dispatcher, tracker, domain) -> list[str]:
        return ["verified"] if tracker.get_slot("customer_id") else ["account_ref", "verified"]

    async def validate_account_ref(self, value: Any, dispatcher, tracker, domain) -> dict:
        if value == "caller_id" and tracker.get_slot("customer_id"):
            return {"account_ref": value}
        caller = tracker.get_slot("caller_id")
        if caller and (await self.lockout.status(caller_key(caller))).locked:
            return {"account_ref": "failed", "verified": False}  # no card tried while locked
        digits = re.sub(r"\D", "", str(value))
        try:
            info = await self.bank.customer_by_card(digits) if 12 <= len(digits) <= 19 else None
        except BankUnavailable:
            return self._bank_failed(tracker, "account_ref")
        if info:
            found = {"account_ref": mask_card(digits), "customer_id": info.customer_id,
                     "vip": info.vip, "failed_attempts": 0}
            if (await self.lockout.status(customer_key(info.customer_id))).locked:
                return {**found, "verified": False}  # its PIN is not asked for
            return found
        # A card that matches no account names none: it counts against the caller id.
        if caller and (await self.lockout.failed(caller_key(caller))).locked:
            return self._locked_out(tracker, "account_ref")
        return self._failed(dispatcher, tracker, "account_ref", "utter_card_not_found")

    async def validate_verified(self, value: Any, dispatcher, tracker, domain) -> dict:
        if value is True:
            return {"verified": True}
        pin = str(value)
        customer = tracker.get_slot("customer_id")
        account = customer_key(customer) if customer else None
        # Checked before the PIN: while locked, even the right PIN is refused unchecked.
        if account and (await self.lockout.status(account)).locked:
            return {"verified": False}
        try:
            right = bool(re.fullmatch(r"\d{6}", pin) and customer
                         and await self.bank.verify_pin(customer, pin))
        except BankUnavailable:  # not a failure of the caller's: nothing counts against them
            return self._bank_failed(tracker, "verified")
        if right:
            await self.lockout.verified(account)  # past failures are forgiven
            dispatcher.utter_message(response="utter_verified")
            return {"verified": True, "failed_attempts": 0}
        if account and (await self.lockout.failed(account)).locked:
            return self._locked_out(tracker, "verified")
        return self._failed(dispatcher, tracker, "verified", "utter_wrong_pin")

    @staticmethod
    def _bank_failed(tracker, slot: str) -> dict:
        """End the form without a verification; ``action_serve`` then says the transfer
        this handoff decides (a form's validation may only set slots)."""
        topic = tracker.get_slot("topic")
        vip = bool(tracker.get_slot("vip"))
        return {slot: "failed" if slot == "account_ref" else False, "verified": False,
                "handoff": {"queue": queue_for(topic, vip), "reason": BANK_FAILED,
                            "priority": priority_for(topic, vip), "topic": topic}}

    @staticmethod
    def _locked_out(tracker, slot: str) -> dict:
        """This failure reached the limit across calls: end the form now, no retry."""
        attempts = int(tracker.get_slot("failed_attempts") or 0) + 1
        return {slot: "failed" if slot == "account_ref" else False, "verified": False,
                "failed_attempts": attempts}

    @staticmethod
    def _failed(dispatcher, tracker, slot: str, response: str) -> dict:
        attempts = int(tracker.get_slot("failed_attempts") or 0) + 1
        if attempts >= MAX_ATTEMPTS:  # ends the form; action_serve escalates
            return {slot: "failed" if slot == "account_ref" else False, "verified": False,
                    "failed_attempts": attempts}
        dispatcher.utter_message(response=response, remaining=MAX_ATTEMPTS - attempts)
        return {slot: None, "failed_attempts": attempts}


class ActionHumanAgent(_BankAction):
    """转人工 / DTMF 0, honoured in every state (SPEC rule 2)."""

    def name(self) -> str:
        return "action_human_agent"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        if tracker.get_slot("topic") or tracker.get_slot("agent_requested"):
            return _escalate(dispatcher, tracker, self.kb, "caller_request")
        dispatcher.utter_message(response="utter_ask_agent_topic")
        return [SlotSet("agent_requested", True), *_continue_form(tracker)]


class ActionAffirm(_BankAction):
    def name(self) -> str:
        return "action_affirm"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        if tracker.get_slot("pending_offer") == OFFER_CARDS:
            return _escalate(dispatcher, tracker, self.kb, "offer_accepted", "report_lost_card")
        if _form_active(tracker):
            return _continue_form(tracker)
        dispatcher.utter_message(response="utter_nothing_to_repeat")
        return []


class ActionDeny(_BankAction):
    """"No": corrects a routing decision not yet served, declines an offer, or answers
    "anything else?" (the call ends)."""

    def name(self) -> str:
        return "action_deny"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        topic = tracker.get_slot("topic")
        if topic and not tracker.get_slot("topic_served"):
            dispatcher.utter_message(response="utter_ask_topic_again")
            return [SlotSet("correction_of", topic), SlotSet("topic", None),
                    *_end_form(tracker), *_understood()]
        if (tracker.get_slot("topic_served") and not tracker.get_slot("pending_offer")
                and not tracker.get_slot("clarify_options")):
            # "No" to "anything else?" after a served request: the caller is done, and
            # asking again would go round in circles.
            dispatcher.utter_message(response="utter_goodbye")
            return [SlotSet("call_ended", True), *_end_form(tracker)]
        dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet("pending_offer", None), *_understood()]


class ActionRepeat(_BankAction):
    def name(self) -> str:
        return "action_repeat"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        said = _last_bot_turn(tracker.events)
        if not said:
            dispatcher.utter_message(response="utter_nothing_to_repeat")
        for text in said:
            dispatcher.utter_message(text=text)
        return []


def _last_bot_turn(events: Iterable[dict]) -> list[str]:
    """What the bot said before the caller's latest input (the "repeat" itself)."""
    said: list[str] = []
    users_seen = 0
    for event in reversed(list(events)):
        if event.get("event") == "user":
            users_seen += 1
            if users_seen == 2:
                break
        elif users_seen == 1 and event.get("event") == "bot" and event.get("text"):
            said.insert(0, event["text"])
    return said


class ActionMainMenu(_BankAction):
    def name(self) -> str:
        return "action_main_menu"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        dispatcher.utter_message(response="utter_main_menu")
        return [SlotSet("topic", None), SlotSet("topic_served", False),
                SlotSet("pending_offer", None), *_end_form(tracker), *_understood()]


class ActionGoodbye(_BankAction):
    def name(self) -> str:
        return "action_goodbye"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        dispatcher.utter_message(response="utter_goodbye")
        return [SlotSet("call_ended", True), *_end_form(tracker)]


class ActionOutOfScope(_BankAction):
    def name(self) -> str:
        return "action_out_of_scope"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        return _unclear(dispatcher, tracker, self.kb, "no_match", "utter_out_of_scope")


class ActionNoMatch(_BankAction):
    """Not understood: ask "A or B?" when two readings are close, else ask again."""

    def name(self) -> str:
        return "action_no_match"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        return _not_understood(dispatcher, tracker, self.kb)


def _not_understood(dispatcher, tracker, kb: KnowledgeBase) -> list[EventType]:
    options = _competing_topics(tracker)
    if options and not tracker.get_slot("unclear_turns"):
        return _clarify(dispatcher, tracker, kb, options)
    return _unclear(dispatcher, tracker, kb, "no_match", "utter_not_understood")


def _competing_topics(tracker: Tracker) -> list[str] | None:
    return competing_topics(tracker.latest_message.get("intent_ranking") or [])


def _clarify(dispatcher, tracker, kb: KnowledgeBase, options: list[str]) -> list[EventType]:
    """Ask which of two topics the caller means; it counts as one unclear turn."""
    dispatcher.utter_message(response="utter_clarify", first=kb.labels.topic(options[0]),
                             second=kb.labels.topic(options[1]))
    return [SlotSet("unclear_turns", 1), SlotSet("clarify_options", options),
            *_continue_form(tracker)]


class ActionNoInput(_BankAction):
    def name(self) -> str:
        return "action_no_input"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        return _unclear(dispatcher, tracker, self.kb, "no_input", "utter_no_input")


def _unclear(dispatcher, tracker, kb: KnowledgeBase, reason: str,
             response: str) -> list[EventType]:
    """One more turn not understood; the second in a row escalates (SPEC rule 1)."""
    turns = int(tracker.get_slot("unclear_turns") or 0) + 1
    if turns >= MAX_UNCLEAR_TURNS:
        return _escalate(dispatcher, tracker, kb, reason)
    dispatcher.utter_message(response=response)
    return [SlotSet("unclear_turns", turns), *_continue_form(tracker)]


class ActionDtmf(_BankAction):
    """Keys outside verification have no menu meaning here: treated as not understood."""

    def name(self) -> str:
        return "action_dtmf"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        return _unclear(dispatcher, tracker, self.kb, "no_match", "utter_not_understood")


def build_actions(bank: BankAdapter, kb: KnowledgeBase,
                  lockout: Lockout | None = None) -> list[Action]:
    """Every custom action of the domain, sharing one bank, knowledge base and verification
    lockout (None: one in this process's memory, for an engine with no call log)."""
    lockout = lockout if lockout is not None else MemoryLockout()
    return [cls(bank, kb, lockout) for cls in (
        ActionGreet, ActionRoute, ActionServe, ValidateVerificationForm, ActionHumanAgent,
        ActionAffirm, ActionDeny, ActionRepeat, ActionMainMenu, ActionGoodbye,
        ActionOutOfScope, ActionNoMatch, ActionNoInput, ActionDtmf,
    )]

