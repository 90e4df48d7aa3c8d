"""Routing: what the caller asked for, served, verified first or handed to a queue, and what
happens when they were not understood (ask "A or B?", ask again, then escalate)."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet

from ivr.dialogue.actions.base import (
    FORM,
    MAX_UNCLEAR_TURNS,
    BankAction,
    continue_form,
    end_form,
    entity_of,
    escalate,
    escalate_locked,
    form_active,
    intent_of,
    understood,
)
from ivr.dialogue.actions.service import answer, serve
from ivr.dialogue.bank import CREDIT, BankUnavailable
from ivr.dialogue.confidence import competing_topics
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.routing import FOLLOW_UPS, TOPICS, Service


class ActionGreet(BankAction):
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


class ActionRoute(BankAction):
    """A request, a follow-up ("那信用卡呢") or a correction ("我说的是信用卡")."""

    def name(self) -> str:
        return "action_route"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        intent = intent_of(tracker)
        if intent in TOPICS and not tracker.get_slot("clarify_options"):
            options = _competing_topics(tracker)
            if options:
                return _clarify(dispatcher, tracker, self.kb, options)
        current = tracker.get_slot("topic")
        topic = intent if intent in TOPICS else self._resolve_fragment(tracker, current)
        if topic is None:
            card_type = entity_of(tracker, "card_type")
            if card_type:
                dispatcher.utter_message(response="utter_which_service_for_card",
                                         card_type=self.kb.labels.card_type(card_type))
                return [*understood(), *continue_form(tracker)]
            return _not_understood(dispatcher, tracker, self.kb)

        events = understood()
        served = tracker.get_slot("topic_served")
        # A different topic before the current one was served corrects a routing decision
        # (SPEC rule 4); trainers see it as a misroute signal.
        if current and not served and topic != current:
            events.append(SlotSet("correction_of", current))
            dispatcher.utter_message(response="utter_rerouted")
        events += [SlotSet("topic", topic), SlotSet("topic_served", False),
                   SlotSet("pending_offer", None)]

        if tracker.get_slot("agent_requested"):  # they asked for a person: route, don't serve
            return events + escalate(dispatcher, tracker, self.kb, "caller_request", topic)
        service = TOPICS[topic].service
        if service is Service.AGENT:
            return events + escalate(dispatcher, tracker, self.kb, "intent", topic)
        if service is Service.KNOWLEDGE:
            answer(dispatcher, self.kb, topic, tracker)
            dispatcher.utter_message(response="utter_anything_else")
            return [*events, SlotSet("topic_served", True), *end_form(tracker)]
        lost_card = None
        if topic == "report_lost_card":
            # Only a card named for this request counts, not one from an earlier topic.
            lost_card = entity_of(tracker, "card_type") or (
                tracker.get_slot("lost_card") if current == topic else None)
            if not lost_card:
                dispatcher.utter_message(response="utter_ask_which_card_lost")
                return events
            events.append(SlotSet("lost_card", lost_card))
        if tracker.get_slot("verified") is True:
            return events + await serve(dispatcher, self.bank, self.kb, tracker, topic,
                                        lost_card)
        if await self._locked(tracker):  # not even asked for a PIN (or a card)
            return events + escalate_locked(dispatcher, tracker, self.kb, topic)
        if not form_active(tracker):
            dispatcher.utter_message(response="utter_verify_first")
        return [*events, FollowupAction(FORM)]

    @staticmethod
    def _resolve_fragment(tracker: Tracker, current: str | None) -> str | None:
        """Which topic a bare card type or currency means, given the conversation so far."""
        card_type = entity_of(tracker, "card_type")
        options = tracker.get_slot("clarify_options") or []
        if card_type and options:
            wanted = "credit_card_bill" if card_type == CREDIT else "recent_transactions"
            if wanted in options:
                return wanted
        if entity_of(tracker, "currency"):
            return "exchange_rate"
        if current and card_type:
            return FOLLOW_UPS.get((current, card_type), current)
        return None


class ActionOutOfScope(BankAction):
    def name(self) -> str:
        return "action_out_of_scope"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        return _unclear(dispatcher, tracker, self.kb, "no_match", "utter_out_of_scope")


class ActionNoMatch(BankAction):
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
            *continue_form(tracker)]


class ActionNoInput(BankAction):
    def name(self) -> str:
        return "action_no_input"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        return _unclear(dispatcher, tracker, self.kb, "no_input", "utter_no_input")


def _unclear(dispatcher, tracker, kb: KnowledgeBase, reason: str,
             response: str) -> list[EventType]:
    """One more turn not understood; the second in a row escalates (SPEC rule 1)."""
    turns = int(tracker.get_slot("unclear_turns") or 0) + 1
    if turns >= MAX_UNCLEAR_TURNS:
        return escalate(dispatcher, tracker, kb, reason)
    dispatcher.utter_message(response=response)
    return [SlotSet("unclear_turns", turns), *continue_form(tracker)]


class ActionDtmf(BankAction):
    """Keys outside verification have no menu meaning here: treated as not understood."""

    def name(self) -> str:
        return "action_dtmf"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        return _unclear(dispatcher, tracker, self.kb, "no_match", "utter_not_understood")
