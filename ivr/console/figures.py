"""The Figures page (live figures of the calls in scope: ivr/console/kpi.py) and the Trends
page (per day or week: ivr/trainer/trends.py)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ivr.console import kpi
from ivr.console.handling import blocking, context, json_answer, number
from ivr.core import zone
from ivr.project import Project
from ivr.trainer.trends import trends

TREND_DAYS = 30  # the Trends page's default period


async def live_figures(request: web.Request) -> web.StreamResponse:
    """Live figures over the last ``hours`` (default 24), of the calls in scope (query
    ``locale``, ``transport``, ``queue``; ``test=1`` counts simulated and chat calls too):
    ivr/console/kpi.py."""
    ctx = context(request)
    hours = number(request, "hours", 24, 1 / 60, 24 * 366)
    since = time.time() - hours * 3600
    scope = kpi.Scope.of(request.query)
    found = await blocking(kpi.read, ctx.store, since, scope)
    return json_answer({**figures(found["counts"], found["signals"], ctx.live_calls(), hours,
                                  since),
                        **found["figures"], "options": found["options"],
                        "scope": scope.__dict__, "timezone": zone.zone_name()})


def figures(counts: dict[str, Any], signals: dict[str, int], live: int, hours: float,
            since: float) -> dict[str, Any]:
    """Containment is self-served calls over ended calls (complete or cut off): a call
    still in progress has no outcome yet, so it is left out of both."""
    status, outcome = counts.get("status", {}), counts.get("outcome", {})
    calls = sum(status.values())
    ended = calls - status.get("live", 0)
    served = outcome.get("self_service", 0)
    return {
        "hours": hours, "since": since, "live_calls": live, "calls": calls, "ended": ended,
        "containment": round(served / ended, 4) if ended else None,
        "status": status,
        "outcome": {k: v for k, v in outcome.items() if k != "None"},
        "escalations_by_queue": counts.get("escalations_by_queue", {}),
        "escalations_by_reason": counts.get("escalations_by_reason", {}),
        "misroute_signals": dict(sorted(signals.items(), key=lambda kv: -kv[1])),
    }


async def trend_lines(request: web.Request) -> web.StreamResponse:
    """Per day (per week past a month) over the last ``days`` for one ``locale``:
    containment, misroute rate, estimated accuracy per intent and per dialect, the
    confusion matrix of labelled utterances and the promotions (ivr/trainer/trends.py)."""
    ctx = context(request)
    days = number(request, "days", TREND_DAYS, 1, 366)
    locale = request.query.get("locale") or "zh"
    until = time.time()
    log = Project(ctx.project_root).promotions_log if ctx.project_root else None
    return json_answer(await blocking(trends, ctx.store, locale, until - days * 86400, until,
                                      log))
