"""The routing contract of SPEC.md: what each intent means for the call.

Names here are public interface: queues, reasons and priorities reach the bank's ACD.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ivr.dialogue.bank import CREDIT, DEBIT


class Service(Enum):
    ACCOUNT = "account"      # served by the engine after verification
    KNOWLEDGE = "knowledge"  # served by the engine from the knowledge base
    AGENT = "agent"          # escalated to the topic's queue


QUEUES = ("general", "cards", "fraud", "loans", "wealth", "private_banking", "complaints")

# Priorities an ACD can order by, lowest first.
NORMAL, HIGH, URGENT = "normal", "high", "urgent"

# Reasons a call escalates.
REASONS = (
    "intent",               # the request is served by agents (loans, complaints...)
    "caller_request",       # 转人工 / DTMF 0
    "no_match",             # two turns in a row not understood
    "no_input",             # two turns in a row of silence
    "verification_failed",  # three wrong PINs or card numbers
    "verification_locked",  # too many failed verifications across calls (SPEC rule 3)
    "offer_accepted",       # the caller accepted an offer to speak to an agent
    "engine_error",         # the dialogue layer failed: never leave the caller alone
)


@dataclass(frozen=True)
class Topic:
    intent: str
    service: Service
    queue: str
    priority: str = NORMAL
    # How the bot names a topic or a queue to the caller is locale data: the `labels:`
    # section of knowledge/<locale>.yml (ivr.dialogue.knowledge.Labels).


TOPICS: dict[str, Topic] = {
    t.intent: t
    for t in (
        Topic("check_balance", Service.ACCOUNT, "general"),
        Topic("recent_transactions", Service.ACCOUNT, "general"),
        Topic("credit_card_bill", Service.ACCOUNT, "cards"),
        Topic("report_lost_card", Service.ACCOUNT, "cards"),
        Topic("activate_card", Service.ACCOUNT, "cards"),
        Topic("branch_info", Service.KNOWLEDGE, "general"),
        Topic("exchange_rate", Service.KNOWLEDGE, "general"),
        Topic("interest_rate", Service.KNOWLEDGE, "general"),
        Topic("password_reset", Service.AGENT, "cards"),
        Topic("fraud_report", Service.AGENT, "fraud", URGENT),
        Topic("complaint", Service.AGENT, "complaints"),
        Topic("loan_inquiry", Service.AGENT, "loans"),
        Topic("wealth_management", Service.AGENT, "wealth"),
    )
}

# Where a bare card type takes the current topic ("那信用卡呢" after a balance).
FOLLOW_UPS: dict[tuple[str, str], str] = {
    ("check_balance", CREDIT): "credit_card_bill",
    ("recent_transactions", CREDIT): "credit_card_bill",
    ("credit_card_bill", DEBIT): "check_balance",
}


def queue_for(intent: str | None, vip: bool = False) -> str:
    """The queue a call about ``intent`` escalates to (``general`` with no topic)."""
    topic = TOPICS.get(intent or "")
    if topic is None:
        return "general"
    if topic.queue == "wealth" and vip:
        return "private_banking"
    return topic.queue


def priority_for(intent: str | None, vip: bool = False) -> str:
    topic = TOPICS.get(intent or "")
    if topic and topic.priority == URGENT:
        return URGENT
    return HIGH if vip else NORMAL
