"""The bank's core-banking API, as the engine sees it, and an embedded demo bank.

``BankAdapter`` is the interface a real bank integration implements; ``DemoBank`` is the
stand-in that ships with the engine (the customers listed in the README). The engine only
ever sees masked card numbers (last four digits) from here.
"""

from __future__ import annotations

import datetime
import hmac
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

CREDIT, DEBIT = "信用卡", "借记卡"


@dataclass
class Card:
    number: str
    card_type: str  # CREDIT or DEBIT
    active: bool = True
    frozen: bool = False

    @property
    def last4(self) -> str:
        return self.number[-4:]


@dataclass(frozen=True)
class Transaction:
    date: datetime.date  # said in the caller's language (knowledge labels.date)
    description: str  # the core-banking memo, as the bank recorded it
    amount: Decimal


@dataclass(frozen=True)
class Bill:
    last4: str
    amount: Decimal
    minimum: Decimal
    due_day: int


@dataclass
class Customer:
    customer_id: str
    phone: str
    pin: str
    name: str
    vip: bool = False
    balance: Decimal = Decimal("0")
    cards: list[Card] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    bill: Bill | None = None

    def card(self, card_type: str, active: bool | None = None) -> Card | None:
        return next(
            (c for c in self.cards
             if c.card_type == card_type and (active is None or c.active == active)),
            None,
        )


@dataclass(frozen=True)
class CustomerInfo:
    """What the engine may know about a caller before and after verification."""

    customer_id: str
    vip: bool
    card_types: tuple[str, ...]


class BankUnavailable(Exception):
    """The bank did not answer as its contract says (down, too slow, refused, malformed):
    the dialogue hands the caller to an agent instead (docs/bank-adapter.md)."""


class BankAdapter(Protocol):
    """The core-banking operations the engine uses. All are async: a real one is remote.
    Any of them may raise ``BankUnavailable``; "no such customer / card / bill" is None."""

    async def customer_by_phone(self, phone: str) -> CustomerInfo | None: ...
    async def customer_by_card(self, card_number: str) -> CustomerInfo | None: ...
    async def customer_info(self, customer_id: str) -> CustomerInfo | None: ...
    async def verify_pin(self, customer_id: str, pin: str) -> bool: ...
    async def balance(self, customer_id: str) -> tuple[str, Decimal]: ...
    async def recent_transactions(
        self, customer_id: str, limit: int
    ) -> tuple[str, list[Transaction]]: ...
    async def credit_card_bill(self, customer_id: str) -> Bill | None: ...
    async def freeze_card(self, customer_id: str, card_type: str) -> str | None: ...
    async def activate_card(self, customer_id: str) -> tuple[str, str] | None: ...


class DemoBank:
    """An in-memory bank with the SPEC's demo customers; frozen or activated cards last
    until ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._customers = {c.customer_id: c for c in demo_customers()}

    def _info(self, c: Customer) -> CustomerInfo:
        return CustomerInfo(c.customer_id, c.vip, tuple(sorted({k.card_type for k in c.cards})))

    async def customer_by_phone(self, phone: str) -> CustomerInfo | None:
        found = next((c for c in self._customers.values() if c.phone == phone), None)
        return self._info(found) if found else None

    async def customer_by_card(self, card_number: str) -> CustomerInfo | None:
        for c in self._customers.values():
            if any(k.number == card_number for k in c.cards):
                return self._info(c)
        return None

    async def customer_info(self, customer_id: str) -> CustomerInfo | None:
        found = self._customers.get(customer_id)
        return self._info(found) if found else None

    async def verify_pin(self, customer_id: str, pin: str) -> bool:
        customer = self._customers.get(customer_id)
        return customer is not None and hmac.compare_digest(customer.pin, pin)

    async def balance(self, customer_id: str) -> tuple[str, Decimal]:
        c = self._customers[customer_id]
        debit = c.card(DEBIT)
        return (debit.last4 if debit else ""), c.balance

    async def recent_transactions(
        self, customer_id: str, limit: int
    ) -> tuple[str, list[Transaction]]:
        c = self._customers[customer_id]
        debit = c.card(DEBIT)
        return (debit.last4 if debit else ""), c.transactions[:limit]

    async def credit_card_bill(self, customer_id: str) -> Bill | None:
        return self._customers[customer_id].bill

    async def freeze_card(self, customer_id: str, card_type: str) -> str | None:
        card = self._customers[customer_id].card(card_type, active=True)
        if card is None:
            return None
        card.frozen = True
        return card.last4

    async def activate_card(self, customer_id: str) -> tuple[str, str] | None:
        card = next((k for k in self._customers[customer_id].cards if not k.active), None)
        if card is None:
            return None
        card.active = True
        return card.last4, card.card_type


def demo_customers() -> list[Customer]:
    """The demo customers of SPEC.md (the README lists them)."""
    return [
        Customer(
            customer_id="C0001",
            phone="+8613800000001",
            pin="123456",
            name="张伟",
            balance=Decimal("12345.67"),
            cards=[
                Card("6222020000001234", DEBIT),
                Card("6258880000005678", CREDIT),
                Card("6258880000009012", CREDIT, active=False),
            ],
            transactions=[
                Transaction(datetime.date(2026, 11, 20), "超市消费", Decimal("-268.50")),
                Transaction(datetime.date(2026, 11, 18), "工资入账", Decimal("15000.00")),
                Transaction(datetime.date(2026, 11, 15), "转账给李娜", Decimal("-2000.00")),
            ],
            bill=Bill("5678", Decimal("3210.00"), Decimal("321.00"), 25),
        ),
        Customer(
            customer_id="C0009",
            phone="+8613900000009",
            pin="888888",
            name="王芳",
            vip=True,
            balance=Decimal("2860000.00"),
            cards=[Card("6222020000009999", DEBIT)],
        ),
    ]
