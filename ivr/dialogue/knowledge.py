"""The knowledge base the engine answers from: branches, exchange and interest rates, and
the words a locale speaks for the engine's canonical names (topics, queues, card types,
currencies)."""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ivr.dialogue.bank import CREDIT, DEBIT
from ivr.dialogue.routing import QUEUES, TOPICS
from ivr.errors import DataFileError, shown
from ivr.yamlfile import read_mapping


@dataclass(frozen=True)
class Branch:
    name: str
    city: str
    address: str
    hours: str


@dataclass(frozen=True)
class Labels:
    """How a locale says the engine's canonical names; the one home of every spoken label.

    Slot values, queues and intents stay canonical (the same in every locale); only what the
    caller hears is looked up here.
    """

    topics: dict[str, str]      # by intent
    queues: dict[str, str]      # by queue name
    card_types: dict[str, str]  # by canonical card type (ivr.dialogue.bank CREDIT / DEBIT)
    currencies: dict[str, str]  # by canonical currency (the exchange_rates keys)
    default_currencies: tuple[str, ...]  # quoted when the caller named none
    separator: str        # between two quoted rates
    exchange_rate: str    # one exchange rate said: {currency} and {rate}
    interest_rate: str    # one interest rate said: {name} and {rate}
    date_format: str      # a date said: {month} and {day}
    # Said instead of utter_transfer when phone verification is locked: {queue} (not a domain
    # response, so that adding it needed no retraining).
    verification_locked: str = ""
    # An amount said with the locale's word for the bank's currency: {amount}.
    money: str = "{amount}"
    # A core-banking memo is said as recorded only when its letters are in scripts the
    # locale's voice reads (Unicode name prefixes: HANGUL, LATIN, CJK); else `otherwise`.
    memo_scripts: tuple[str, ...] = ()
    memo_otherwise: str = ""
    # Said instead of "not understood" when a PIN or card number is said aloud: by entry.
    keyed_secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, exchange_rates: Mapping[str, str]) -> Labels:
        """Check a ``labels:`` section; raises ValueError naming the first problem."""
        if not isinstance(data, dict):
            raise ValueError("labels must be a mapping")
        rates = _mapping(data, "rates")
        memo = data.get("memo") or {}
        if not isinstance(memo, dict):
            raise ValueError("labels.memo must be a mapping")
        labels = cls(
            topics=_names(data, "topics", TOPICS),
            queues=_names(data, "queues", QUEUES),
            card_types=_names(data, "card_types", (DEBIT, CREDIT)),
            currencies=_names(data, "currencies", exchange_rates),
            default_currencies=tuple(str(c) for c in rates.get("default_currencies") or ()),
            separator=str(rates.get("separator", "")),
            exchange_rate=str(rates.get("exchange_rate", "")),
            interest_rate=str(rates.get("interest_rate", "")),
            date_format=str(data.get("date", "")),
            verification_locked=str(data.get("verification_locked", "")),
            money=str(data.get("money", "")),
            memo_scripts=tuple(str(s).upper() for s in memo.get("scripts") or ()),
            memo_otherwise=str(memo.get("otherwise", "")),
            keyed_secrets=_names(data, "keyed_secrets", ("pin", "card")),
        )
        if not labels.default_currencies:
            raise ValueError("labels.rates.default_currencies must list currencies")
        unknown = [c for c in labels.default_currencies if c not in exchange_rates]
        if unknown:
            raise ValueError(
                f"labels.rates.default_currencies: no exchange rate for {unknown[0]!r}")
        if not labels.separator:
            raise ValueError("labels.rates.separator is missing")
        _check_format("labels.rates.exchange_rate", labels.exchange_rate, currency="", rate="")
        _check_format("labels.rates.interest_rate", labels.interest_rate, name="", rate="")
        _check_format("labels.date", labels.date_format, month="", day="")
        _check_format("labels.verification_locked", labels.verification_locked, queue="")
        _check_format("labels.money", labels.money, amount="")
        if labels.memo_scripts and not labels.memo_otherwise:
            raise ValueError("labels.memo.otherwise is missing (said for an unreadable memo)")
        return labels

    def topic(self, intent: str) -> str:
        return self.topics[intent]

    def queue(self, queue: str) -> str:
        return self.queues[queue]

    def amount(self, value: Decimal) -> str:
        """An amount of the bank's currency as said in this locale (12345.67元, 12345.67위안)."""
        return self.money.format(amount=f"{value:.2f}")

    def memo(self, description: str) -> str:
        """A transaction's memo as the bank recorded it, when this locale's voice can read
        it; a Korean voice cannot say 超市消费, so it hears `memo.otherwise` instead."""
        if not self.memo_scripts:
            return description
        letters = [unicodedata.name(ch, "") for ch in description if ch.isalpha()]
        if all(name.startswith(self.memo_scripts) for name in letters):
            return description
        return self.memo_otherwise

    def card_type(self, card_type: str) -> str:
        """A canonical card type as said; anything else (never expected) as it is."""
        return self.card_types.get(card_type, card_type)

    def currency(self, currency: str) -> str:
        return self.currencies[currency]

    def date(self, day: datetime.date) -> str:
        return self.date_format.format(month=day.month, day=day.day)


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"labels.{key} must be a mapping")
    return value


def _names(data: dict[str, Any], key: str, required: Iterable[str]) -> dict[str, str]:
    """A label for each required name, no blanks."""
    names = {str(k): str(v) for k, v in _mapping(data, key).items()
             if isinstance(v, (str, int, float)) and str(v).strip()}
    missing = [name for name in required if name not in names]
    if missing:
        raise ValueError(f"labels.{key} has no label for {missing[0]!r}")
    return names


def _check_format(where: str, template: str, **fields: str) -> None:
    if not template:
        raise ValueError(f"{where} is missing")
    try:
        template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{where}: bad template {template!r} ({e!r})") from None
    absent = [name for name in fields if "{" + name + "}" not in template]
    if absent:
        raise ValueError(f"{where}: template {template!r} lacks {{{absent[0]}}}")


@dataclass(frozen=True)
class Answer:
    """One prompt of a knowledge topic's answer: the domain response and the values it
    says (the response names the recording and the sentence; this file, the facts)."""

    response: str
    values: dict[str, str]


@dataclass(frozen=True)
class KnowledgeBase:
    branches: tuple[Branch, ...]
    exchange_rates: dict[str, str]  # canonical currency -> home currency per 100 units
    exchange_as_of: str
    interest_rates: dict[str, str]  # as said -> rate
    interest_as_of: str
    labels: Labels

    @classmethod
    def load(cls, path: Path) -> KnowledgeBase:
        data: Any = read_mapping(path)
        try:
            exchange_rates = {str(k): str(v) for k, v in data["exchange_rates"]["rates"].items()}
            return cls(
                branches=tuple(Branch(**b) for b in data["branches"]),
                exchange_rates=exchange_rates,
                exchange_as_of=str(data["exchange_rates"]["as_of"]),
                interest_rates={str(k): str(v)
                                for k, v in data["interest_rates"]["rates"].items()},
                interest_as_of=str(data["interest_rates"]["as_of"]),
                labels=Labels.parse(data.get("labels"), exchange_rates),
            )
        except ValueError as e:
            raise DataFileError(f"{shown(path)}: malformed knowledge base ({e})") from None
        except (KeyError, TypeError, AttributeError) as e:
            raise DataFileError(f"{shown(path)}: malformed knowledge base ({e!r})") from None

    def answer(self, topic: str, said: str, currency: str | None = None) -> list[Answer]:
        """What a knowledge topic (``Service.KNOWLEDGE`` in ivr/dialogue/routing.py) says: branches
        in the city named in ``said`` (else all), ``currency``'s rate (else the default
        ones), the interest rates; nothing for any other topic."""
        if topic == "branch_info":
            return [Answer("utter_branch", {"name": b.name, "address": b.address,
                                            "hours": b.hours}) for b in self.branches_in(said)]
        if topic == "exchange_rate":
            return [Answer("utter_exchange_rates", {"rates": self.exchange_answer(currency),
                                                    "as_of": self.exchange_as_of})]
        if topic == "interest_rate":
            return [Answer("utter_interest_rates", {"rates": self.interest_answer(),
                                                    "as_of": self.interest_as_of})]
        return []

    def branches_in(self, text: str) -> list[Branch]:
        """Branches in a city the caller named, else all of them."""
        named = [b for b in self.branches if b.city in text]
        return named or list(self.branches)

    def exchange_answer(self, currency: str | None) -> str:
        """The rates to say: the caller's currency if we quote it, else the defaults."""
        wanted = [currency] if currency in self.exchange_rates else self.labels.default_currencies
        return self.labels.separator.join(
            self.labels.exchange_rate.format(currency=self.labels.currency(c),
                                             rate=self.exchange_rates[c])
            for c in wanted)

    def interest_answer(self) -> str:
        return self.labels.separator.join(
            self.labels.interest_rate.format(name=name, rate=rate)
            for name, rate in self.interest_rates.items())

