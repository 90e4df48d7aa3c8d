"""Handoff to a human agent: the bundle (SPEC rule 5) and its delivery to the bank's ACD.

The ACD is the bank's; the engine POSTs the bundle as JSON to a configurable webhook. A
failed delivery is retried, then reported, and never loses the call's result.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)

# Dialects agents must speak to serve the caller well; others are served in Mandarin.
DIALECT_SKILLS = {"yue": "yue"}
# Every agent speaks Mandarin; a caller of any other locale needs an agent who speaks it,
# named by the locale (so a new locale needs no code here).
HOME_LOCALE = "zh"


def skills_for(locale: str, dialect: str) -> list[str]:
    """Agent skills a call needs: the caller's language or dialect where it matters."""
    skills = [locale] if locale and locale != HOME_LOCALE else []
    if dialect in DIALECT_SKILLS:
        skills.append(DIALECT_SKILLS[dialect])
    return skills


@dataclass(frozen=True)
class Delivery:
    """How delivering one handoff to the ACD went."""

    status: str  # "delivered", "failed" or "not_configured"
    attempts: int = 0
    error: str | None = None
    acd_reference: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class HandoffDesk(Protocol):
    """Where escalated calls' bundles go: the bank's ACD (``AcdWebhook``), or a test's."""

    async def deliver(self, bundle: dict[str, Any]) -> Delivery: ...


class AcdWebhook:
    """POSTs handoff bundles to the bank's ACD, with a timeout and retries.

    The call id is sent as ``Idempotency-Key`` so a retry after a lost response cannot
    queue the same caller twice.
    """

    def __init__(self, url: str, timeout_s: float = 3.0, attempts: int = 3,
                 backoff_s: float = 0.2, token: str | None = None) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = attempts
        self._backoff = backoff_s
        self._token = token

    async def deliver(self, bundle: dict[str, Any]) -> Delivery:
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Idempotency-Key": bundle["call_id"]}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
        error = ""
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            for attempt in range(1, self._attempts + 1):
                try:
                    async with session.post(self.url, data=body, headers=headers) as resp:
                        if resp.status < 300:
                            reply = await resp.json(content_type=None)
                            ref = reply.get("id") if isinstance(reply, dict) else None
                            return Delivery("delivered", attempt, acd_reference=ref)
                        error = f"ACD answered HTTP {resp.status}"
                        if resp.status < 500:  # the ACD refused the bundle: retrying won't help
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    error = f"ACD unreachable at {self.url} ({type(e).__name__})"
                if attempt < self._attempts:
                    await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
        log.error("handoff of call %s not delivered: %s", bundle["call_id"], error)
        return Delivery("failed", attempt, error=error)
