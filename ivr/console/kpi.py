"""The Figures page's contact-centre figures, from the calls that started in a period:
transfer rate, average handle time, calls by hour of the bank's day, containment by intent,
abandonment, repeat callers; filtered by locale, transport and queue, with test calls
(``ivr simulate``, ``ivr chat``) left out unless asked for.

Every function here is synchronous (the console runs them on the executor).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ivr.calllog.schema import calls as call_table
from ivr.calllog.store import LIVE, CallStore
from ivr.core import zone
from ivr.core.events import MisrouteSignal

# Calls people made to try the engine, not customers: out of the figures by default.
TEST_TRANSPORTS = frozenset({"simulate", "chat"})
REPEAT_WINDOW_S = 24 * 3600  # a call within a day of the same caller's previous one


@dataclass(frozen=True)
class Scope:
    """Which calls count: one locale, transport, queue (None: any) and test calls or not."""

    locale: str | None = None
    transport: str | None = None
    queue: str | None = None
    include_test: bool = False

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Scope:
        return cls(query.get("locale") or None, query.get("transport") or None,
                   query.get("queue") or None, query.get("test") in ("1", "true"))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def counts(calls: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``CallStore.counts``'s shape, over these calls only (so the filters apply)."""
    status, outcome, by_queue, by_reason = Counter(), Counter(), Counter(), Counter()
    for c in calls:
        status[str(c.get("status"))] += 1
        outcome[str(c.get("outcome"))] += 1
        if c.get("outcome") == "escalated":
            by_queue[str(c.get("queue"))] += 1
            by_reason[str(c.get("reason"))] += 1
    return {"status": dict(status), "outcome": dict(outcome),
            "escalations_by_queue": dict(by_queue), "escalations_by_reason": dict(by_reason)}


def contact_centre(calls: list[Mapping[str, Any]],
                   earlier: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The figures over ``calls`` (the period's, in scope); ``earlier``: the same scope's
    calls of the day before the period, so a repeat on the period's first morning counts.

    - transfer rate: escalated / ended calls; abandonment: hung up before being served
      or transferred (outcome ``hangup``) / ended calls;
    - average handle time: ended calls' mean duration, start to end, in seconds;
    - calls by hour: all calls by the hour of the bank's day they started in (0-23);
    - containment by intent: per intent (``(none)``: the caller never said), ended calls,
      self-served, escalated, abandoned, containment;
    - repeat calls: calls whose caller (known caller ids only) had called within the 24 h
      before; the repeat rate is over the calls with a caller id.
    """
    ended = [c for c in calls if c.get("status") != LIVE]
    outcomes = Counter(c.get("outcome") for c in ended)
    durations = [c["ended_at"] - c["started_at"] for c in ended
                 if c.get("ended_at") is not None and c["ended_at"] >= c["started_at"]]
    hours = [0] * 24
    for c in calls:
        hours[zone.local(c["started_at"]).hour] += 1
    per_intent: dict[str, Counter[str]] = defaultdict(Counter)
    for c in ended:
        tally = per_intent[c.get("intent") or "(none)"]
        tally["calls"] += 1
        tally[str(c.get("outcome"))] += 1
    by_intent = {
        name: {"calls": t["calls"], "self_service": t["self_service"],
               "escalated": t["escalated"], "abandoned": t["hangup"],
               "containment": _share(t["self_service"], t["calls"])}
        for name, t in sorted(per_intent.items(), key=lambda kv: (-kv[1]["calls"], kv[0]))}
    last: dict[str, float] = {}
    repeats, repeat_callers, known = 0, set(), 0
    period = {id(c) for c in calls}
    for c in sorted([*earlier, *calls], key=lambda c: c["started_at"]):
        caller = c.get("caller")
        if not caller:
            continue
        mine = id(c) in period
        if mine:
            known += 1
            if caller in last and c["started_at"] - last[caller] <= REPEAT_WINDOW_S:
                repeats += 1
                repeat_callers.add(caller)
        last[caller] = c["started_at"]
    return {
        "transfer_rate": _share(outcomes["escalated"], len(ended)),
        "abandoned": outcomes["hangup"],
        "abandonment": _share(outcomes["hangup"], len(ended)),
        "average_handle_s": round(sum(durations) / len(durations), 1) if durations else None,
        "calls_by_hour": hours,
        "containment_by_intent": by_intent,
        "repeat_calls": repeats,
        "repeat_callers": len(repeat_callers),
        "repeat_rate": _share(repeats, known),
    }


# Only what the figures read: the page polls every 10 s, so no recording paths, models...
_COLUMNS = ("call_id", "started_at", "ended_at", "status", "outcome", "intent", "queue",
            "reason", "caller", "locale", "transport")
_FILTERED = ("locale", "transport", "queue")


def _in_scope(store: CallStore, since: float, scope: Scope) -> list[dict[str, Any]]:
    """The calls in scope started from ``since`` on, filtered by the database."""
    c = call_table.c
    query = sa.select(*(c[k] for k in _COLUMNS)).where(c.started_at >= since)
    if not scope.include_test:
        query = query.where(sa.or_(c.transport.is_(None),
                                   c.transport.not_in(sorted(TEST_TRANSPORTS))))
    for key in _FILTERED:
        if getattr(scope, key) is not None:
            query = query.where(c[key] == getattr(scope, key))
    with store.engine.connect() as db:
        return [dict(r._mapping) for r in db.execute(query)]


def options(store: CallStore, since: float) -> dict[str, list[str]]:
    """The locales, transports and queues the period's calls have: what the filters offer."""
    c = call_table.c
    with store.engine.connect() as db:
        return {key: sorted(str(v) for (v,) in db.execute(
            sa.select(c[key]).distinct().where(c.started_at >= since, c[key].is_not(None))))
            for key in _FILTERED}


def read(store: CallStore, since: float, scope: Scope) -> dict[str, Any]:
    """The period's calls in scope (and the day before's, for repeats), their counts,
    their misroute signals by kind, the filters' options and the figures."""
    rows = _in_scope(store, since - REPEAT_WINDOW_S, scope)
    period = [c for c in rows if c["started_at"] >= since]
    earlier = [c for c in rows if c["started_at"] < since]
    kept = {c["call_id"] for c in period}
    signals: Counter[str] = Counter()
    for e in store.events_of(MisrouteSignal, since):
        if e.call_id in kept:
            signals[e.signal] += 1
    return {"counts": counts(period), "signals": dict(signals),
            "options": options(store, since), "figures": contact_centre(period, earlier)}
