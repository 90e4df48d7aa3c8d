"""The one place a dialogue engine is built: its model, bank adapter, knowledge base and
verification lockout, from the project and the configuration.

The bank adapter is configured (docs/bank-adapter.md): ``IVR_BANK=demo`` (the embedded
default: the demo customers of the README) or ``IVR_BANK=http`` with ``IVR_BANK_URL`` (the
bank's core-banking API), ``IVR_BANK_TOKEN``, ``IVR_BANK_TIMEOUT_S``, ``IVR_BANK_RETRIES``.
Evaluation and replay always use the demo bank (``stand_in_bank``): their scripted and
recorded calls are the demo customers', and a replay must never act on a real account.
A locale is its files (``knowledge/<locale>.yml``, the model named in ``models/live.yml``):
adding one needs no code here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr.bank import BankAdapter, DemoBank
from ivr.errors import IvrError
from ivr.project import Project

if TYPE_CHECKING:
    from ivr.dialogue.engine import DialogueEngine

BANK_KINDS = ("demo", "http")


@dataclass(frozen=True)
class BankSettings:
    """Which bank adapter the engine calls, and how (``from_env`` reads ``IVR_BANK*``)."""

    kind: str = "demo"
    url: str = ""
    token: str | None = None
    timeout_s: float = 2.0  # per request: the caller waits in silence meanwhile
    retries: int = 1        # more attempts after the first, reads and keyed writes only

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BankSettings:
        """The configured bank; a wrong setting is one ``IvrError`` line."""
        env = os.environ if env is None else env
        kind = (env.get("IVR_BANK") or "demo").strip().lower()
        if kind not in BANK_KINDS:
            raise IvrError(f"IVR_BANK={kind!r}: expected one of {', '.join(BANK_KINDS)}")
        url = (env.get("IVR_BANK_URL") or "").strip()
        if kind == "http" and not url.startswith(("http://", "https://")):
            raise IvrError("IVR_BANK=http needs IVR_BANK_URL, the core-banking API's base "
                           "URL (http:// or https://)")
        return cls(kind, url, env.get("IVR_BANK_TOKEN") or None,
                   _number(env, "IVR_BANK_TIMEOUT_S", cls.timeout_s, float),
                   _number(env, "IVR_BANK_RETRIES", cls.retries, int))


def _number(env: Mapping[str, str], name: str, default: Any, kind: type) -> Any:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if value < 0 or (kind is float and value == 0):
        raise IvrError(f"{name}={raw!r}: expected a positive number")
    return value


def open_bank(settings: BankSettings | None = None) -> BankAdapter:
    """The bank adapter ``settings`` name (default: the environment's)."""
    settings = settings or BankSettings.from_env()
    if settings.kind == "http":
        from ivr.bank_http import HttpBank

        return HttpBank(settings.url, settings.token, settings.timeout_s, settings.retries)
    return stand_in_bank()


def stand_in_bank() -> DemoBank:
    """The embedded demo bank, whatever is configured (evaluation, replay, benchmarks)."""
    return DemoBank()


async def load_engine(project: Project, model: Path | None = None, *,
                      bank: BankAdapter | None = None, conversations: str | None = None,
                      lockout: Any = None) -> DialogueEngine:
    """The locale's dialogue engine on ``model`` (default: the live model), calling ``bank``
    (default: the configured one), answering from ``knowledge/<locale>.yml``, its calls'
    conversations in ``conversations`` (a Redis URL; None: in this process), failed
    verifications counted in ``lockout`` (None: in this process)."""
    from ivr.dialogue.engine import DialogueEngine
    from ivr.knowledge import KnowledgeBase

    kb = KnowledgeBase.load(project.knowledge)  # a malformed file fails before the model loads
    return await DialogueEngine.load(model or project.live_model(), bank or open_bank(), kb,
                                     conversations, lockout)


async def close_engines(engines: Iterable[DialogueEngine]) -> None:
    """Close engines at the end of a program, their bank adapters' connections first and
    waited for (closed later, at exit, they would be reported as leaked)."""
    engines = list(engines)
    banks = {id(e.bank): e.bank for e in engines}
    for bank in banks.values():
        aclose_all = getattr(bank, "aclose_all", None)
        if aclose_all is not None:
            await aclose_all()
    for engine in engines:
        engine.close()
