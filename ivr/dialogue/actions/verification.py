"""Verification: the form that asks for a card number (unknown callers) and the PIN."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import FormValidationAction

from ivr.core.masking import mask_card
from ivr.dialogue.actions.base import BANK_FAILED, MAX_ATTEMPTS, BankAction
from ivr.dialogue.bank import BankUnavailable
from ivr.dialogue.lockout import caller_key, customer_key
from ivr.dialogue.routing import priority_for, queue_for


class ValidateVerificationForm(FormValidationAction, BankAction):
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
