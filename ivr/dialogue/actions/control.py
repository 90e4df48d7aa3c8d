"""The caller's control words, honoured wherever they come: an agent, yes, no, repeat, the
main menu, goodbye."""

from __future__ import annotations

from collections.abc import Iterable

from rasa_sdk.events import EventType, SlotSet

from ivr.dialogue.actions.base import (
    OFFER_CARDS,
    BankAction,
    continue_form,
    end_form,
    escalate,
    form_active,
    understood,
)


class ActionHumanAgent(BankAction):
    """转人工 / DTMF 0, honoured in every state (SPEC rule 2)."""

    def name(self) -> str:
        return "action_human_agent"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        if tracker.get_slot("topic") or tracker.get_slot("agent_requested"):
            return escalate(dispatcher, tracker, self.kb, "caller_request")
        dispatcher.utter_message(response="utter_ask_agent_topic")
        return [SlotSet("agent_requested", True), *continue_form(tracker)]


class ActionAffirm(BankAction):
    def name(self) -> str:
        return "action_affirm"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        if tracker.get_slot("pending_offer") == OFFER_CARDS:
            return escalate(dispatcher, tracker, self.kb, "offer_accepted", "report_lost_card")
        if form_active(tracker):
            return continue_form(tracker)
        dispatcher.utter_message(response="utter_nothing_to_repeat")
        return []


class ActionDeny(BankAction):
    """"No": corrects a routing decision not yet served, declines an offer, or answers
    "anything else?" (the call ends)."""

    def name(self) -> str:
        return "action_deny"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        topic = tracker.get_slot("topic")
        if topic and not tracker.get_slot("topic_served"):
            dispatcher.utter_message(response="utter_ask_topic_again")
            return [SlotSet("correction_of", topic), SlotSet("topic", None),
                    *end_form(tracker), *understood()]
        if (tracker.get_slot("topic_served") and not tracker.get_slot("pending_offer")
                and not tracker.get_slot("clarify_options")):
            # "No" to "anything else?" after a served request: the caller is done, and
            # asking again would go round in circles.
            dispatcher.utter_message(response="utter_goodbye")
            return [SlotSet("call_ended", True), *end_form(tracker)]
        dispatcher.utter_message(response="utter_anything_else")
        return [SlotSet("pending_offer", None), *understood()]


class ActionRepeat(BankAction):
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


class ActionMainMenu(BankAction):
    def name(self) -> str:
        return "action_main_menu"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        dispatcher.utter_message(response="utter_main_menu")
        return [SlotSet("topic", None), SlotSet("topic_served", False),
                SlotSet("pending_offer", None), *end_form(tracker), *understood()]


class ActionGoodbye(BankAction):
    def name(self) -> str:
        return "action_goodbye"

    async def run(self, dispatcher, tracker, domain) -> list[EventType]:
        dispatcher.utter_message(response="utter_goodbye")
        return [SlotSet("call_ended", True), *end_form(tracker)]
