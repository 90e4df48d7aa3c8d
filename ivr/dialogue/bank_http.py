"""A ``BankAdapter`` that calls the bank's core-banking API over HTTP (docs/bank-adapter.md).

Every request has its own timeout; reads are retried a bounded number of times with
backoff, and so are the two writes (freeze, activate), but only because each carries an
``Idempotency-Key`` the bank must honour: a retry after a lost answer cannot freeze twice.
A PIN check is never retried (a bank that counts wrong PINs would count one twice). Card
numbers, phone numbers and PINs travel only in request bodies, never in a URL (proxies
log URLs), and never in a log line. Anything but the contract's answers raises
``BankUnavailable``, which the dialogue turns into a transfer to an agent.

The dialogue's custom actions await this adapter on the engine's dialogue thread, whose
event loop is not the caller's; an aiohttp session belongs to the loop it was made on, so
there is one session per loop, made on first use there (``aclose`` closes that loop's).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import aiohttp

from ivr.dialogue.bank import BankUnavailable, Bill, CustomerInfo, Transaction

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})  # the bank says: not now, try again
CUSTOMER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the contract's customer ids


class HttpBank:
    """The bank's core-banking API at ``url`` (e.g. ``https://core.bank.example/ivr/v1``)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 2.0,
                 retries: int = 1, backoff_s: float = 0.2) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries = max(0, retries)
        self._backoff_s = backoff_s
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    # --- the BankAdapter operations ---------------------------------------------------------
    async def customer_by_phone(self, phone: str) -> CustomerInfo | None:
        return _info(await self._call("POST", "/customers/by-phone", {"phone": phone},
                                      found_or_none=True))

    async def customer_by_card(self, card_number: str) -> CustomerInfo | None:
        return _info(await self._call("POST", "/customers/by-card",
                                      {"card_number": card_number}, found_or_none=True))

    async def customer_info(self, customer_id: str) -> CustomerInfo | None:
        return _info(await self._call("GET", _customer(customer_id), found_or_none=True))

    async def verify_pin(self, customer_id: str, pin: str) -> bool:
        reply = await self._call("POST", _customer(customer_id, "/verify-pin"), {"pin": pin},
                                 retry=False)
        return _field(reply, "verified", bool)

    async def balance(self, customer_id: str) -> tuple[str, Decimal]:
        reply = await self._call("GET", _customer(customer_id, "/balance"))
        return _field(reply, "last4", str), _amount(reply, "balance")

    async def recent_transactions(self, customer_id: str,
                                  limit: int) -> tuple[str, list[Transaction]]:
        reply = await self._call("GET", _customer(customer_id, "/transactions"),
                                 params={"limit": str(int(limit))})
        items = _field(reply, "transactions", list)
        try:
            transactions = [Transaction(datetime.date.fromisoformat(_field(t, "date", str)),
                                        _field(t, "description", str), _amount(t, "amount"))
                            for t in items[:limit]]
        except ValueError as e:
            raise BankUnavailable(f"malformed transaction ({e})") from None
        return _field(reply, "last4", str), transactions

    async def credit_card_bill(self, customer_id: str) -> Bill | None:
        reply = await self._call("GET", _customer(customer_id, "/credit-card-bill"),
                                 found_or_none=True)
        if reply is None:
            return None
        return Bill(_field(reply, "last4", str), _amount(reply, "amount"),
                    _amount(reply, "minimum"), _field(reply, "due_day", int))

    async def freeze_card(self, customer_id: str, card_type: str) -> str | None:
        reply = await self._call("POST", _customer(customer_id, "/cards/freeze"),
                                 {"card_type": card_type}, found_or_none=True,
                                 idempotency_key=uuid.uuid4().hex)
        return None if reply is None else _field(reply, "last4", str)

    async def activate_card(self, customer_id: str) -> tuple[str, str] | None:
        reply = await self._call("POST", _customer(customer_id, "/cards/activate"), {},
                                 found_or_none=True, idempotency_key=uuid.uuid4().hex)
        if reply is None:
            return None
        return _field(reply, "last4", str), _field(reply, "card_type", str)

    async def aclose(self) -> None:
        """Close the running loop's session (an engine does, before its loop stops; the
        other engines calling this adapter keep theirs)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    async def aclose_all(self) -> None:
        """Close every loop's session, each on its own loop: at the end of a program
        (``ivr simulate``, ``ivr chat``), when no engine calls this adapter any more."""
        here = asyncio.get_running_loop()
        for loop, session in list(self._sessions.items()):
            del self._sessions[loop]
            if loop is here:
                await session.close()
            elif loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(session.close(),
                                                                           loop))

    # --- one request, retried ---------------------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            headers = {"Accept": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            session = self._sessions[loop] = aiohttp.ClientSession(
                timeout=self._timeout, headers=headers, raise_for_status=False)
        return session

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                    params: dict[str, str] | None = None, found_or_none: bool = False,
                    retry: bool = True, idempotency_key: str | None = None) -> Any:
        """The JSON answer; None for 404 where the contract allows "not found"; else
        ``BankUnavailable`` after the retries. Logs say the path and the failure, nothing
        the caller said or keyed."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        attempts = 1 + (self._retries if retry else 0)
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                async with self._session().request(method, self.url + path, json=body,
                                                   params=params, headers=headers) as resp:
                    if resp.status == 404 and found_or_none:
                        return None
                    if resp.status < 300:
                        return await resp.json(content_type=None)
                    error = f"HTTP {resp.status}"
                    if resp.status not in RETRY_STATUSES and resp.status < 500:
                        break  # the bank refused this request: the same one fails again
            except asyncio.TimeoutError:
                error = "timed out"
            except (aiohttp.ClientError, ValueError) as e:  # ValueError: a body not JSON
                error = type(e).__name__
            if attempt < attempts:
                log.warning("bank: %s %s failed (%s), attempt %d of %d", method,
                            _route(path), error, attempt, attempts)
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        log.error("bank: %s %s failed (%s) after %d attempt(s)", method, _route(path), error,
                  attempts)
        raise BankUnavailable(f"{method} {_route(path)}: {error}")


def _customer(customer_id: str, rest: str = "") -> str:
    """A customer's resource. The id is one the bank gave (a slot), but checked anyway: a
    ``..`` or a slash must never make it another resource."""
    if not isinstance(customer_id, str) or not CUSTOMER_ID.fullmatch(customer_id):
        raise BankUnavailable("malformed customer id")
    return f"/customers/{quote(customer_id, safe='')}{rest}"


def _route(path: str) -> str:
    """A path as logged: the customer id (an account reference) left out."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "customers" and parts[2] not in ("by-phone", "by-card"):
        parts[2] = "{id}"
    return "/".join(parts)


def _field(data: Any, name: str, kind: type) -> Any:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BankUnavailable(f"malformed answer: {name!r} is not {kind.__name__}")
    return value


def _amount(data: Any, name: str) -> Decimal:
    """An amount, sent as a decimal string ("12345.67") so that no cent is lost to floats."""
    try:
        return Decimal(_field(data, name, str))
    except InvalidOperation:
        raise BankUnavailable(f"malformed answer: {name!r} is not an amount") from None


def _info(data: Any) -> CustomerInfo | None:
    if data is None:
        return None
    types = _field(data, "card_types", list)
    customer_id = _field(data, "customer_id", str)
    if not CUSTOMER_ID.fullmatch(customer_id):
        raise BankUnavailable("malformed answer: 'customer_id'")
    return CustomerInfo(customer_id, _field(data, "vip", bool), tuple(str(t) for t in types))
