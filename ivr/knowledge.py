"""The knowledge base the engine answers from: branches, exchange and interest rates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.errors import DataFileError
from ivr.yamlfile import read_mapping


@dataclass(frozen=True)
class Branch:
    name: str
    city: str
    address: str
    hours: str


@dataclass(frozen=True)
class KnowledgeBase:
    branches: tuple[Branch, ...]
    exchange_rates: dict[str, str]
    exchange_as_of: str
    interest_rates: dict[str, str]
    interest_as_of: str

    @classmethod
    def load(cls, path: Path) -> KnowledgeBase:
        data: Any = read_mapping(path)
        try:
            return cls(
                branches=tuple(Branch(**b) for b in data["branches"]),
                exchange_rates={k: str(v) for k, v in data["exchange_rates"]["rates"].items()},
                exchange_as_of=str(data["exchange_rates"]["as_of"]),
                interest_rates={k: str(v) for k, v in data["interest_rates"]["rates"].items()},
                interest_as_of=str(data["interest_rates"]["as_of"]),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise DataFileError(f"{path}: malformed knowledge base ({e!r})") from None

    def branches_in(self, text: str) -> list[Branch]:
        """Branches in a city the caller named, else all of them."""
        named = [b for b in self.branches if b.city in text]
        return named or list(self.branches)
