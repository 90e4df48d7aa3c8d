"""The bank's call flows, as Rasa custom actions run in-process.

Rules in ``dialogue/rules.yml`` say which action answers which input; these actions decide
what that means for the call: verify first, serve, clarify, re-route or escalate. Every
escalation goes through ``base.escalate`` and sets the ``handoff`` slot, which the engine
turns into the handoff bundle. Actions get the bank and knowledge base injected, never
globals. One module per concern:

- ``base``: the shared base class, slot readings and escalation;
- ``routing``: greeting, routing a request, clarifying and not-understood turns;
- ``verification``: the card-number and PIN form;
- ``service``: serving account and knowledge topics once allowed;
- ``control``: agent, yes, no, repeat, main menu, goodbye.
"""

from __future__ import annotations

from rasa_sdk import Action

from ivr.dialogue.actions.control import (
    ActionAffirm,
    ActionDeny,
    ActionGoodbye,
    ActionHumanAgent,
    ActionMainMenu,
    ActionRepeat,
)
from ivr.dialogue.actions.routing import (
    ActionDtmf,
    ActionGreet,
    ActionNoInput,
    ActionNoMatch,
    ActionOutOfScope,
    ActionRoute,
)
from ivr.dialogue.actions.service import ActionServe
from ivr.dialogue.actions.verification import ValidateVerificationForm
from ivr.dialogue.bank import BankAdapter
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.dialogue.lockout import Lockout, MemoryLockout


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
