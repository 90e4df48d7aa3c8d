"""Figures over time for trainers and managers (the console's Figures page): per day or
week, calls, containment and misroute rate; intent accuracy overall, per intent and per
dialect; the confusion matrix of what trainers judged; the held-out accuracy of each model
made live.

Accuracy here is measured on real calls, so it is an estimate built from the call log and
the trainers' labels (docs/review.md#accuracy-over-time). A caller utterance is
  - right or wrong when a trainer labelled it: right when the label is the intent the
    engine understood (an ASR error or a missing dialect synonym is wrong);
  - assumed right when nothing flagged it (no misroute signal: the call went on as if it
    was understood);
  - pending when flagged and not yet labelled: left out of the accuracy, and counted, so
    the figure is read with the review queue's backlog beside it.
Every function here is synchronous (the console runs them in a thread).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from ivr.calllog.store import LIVE, CallFilter, CallStore
from ivr.core import zone
from ivr.trainer.review import EVENT_KINDS, call_items

Verdict = Literal["right", "wrong", "assumed", "pending"]
# A period longer than this many days is shown by (ISO, Monday-first) week, else by day.
DAILY_UP_TO_DAYS = 31
_MAX_CALLS = 10_000_000  # the period bounds the calls read, not a page size


@dataclass(frozen=True)
class Judged:
    """One caller utterance and what is known of whether it was understood."""

    at: float  # the call's start
    intent: str | None  # what the caller wanted (the label, else what was understood)
    predicted: str | None  # what the engine understood
    dialect: str
    verdict: Verdict


def judge(store: CallStore, locale: str, since: float, until: float | None = None
          ) -> tuple[list[dict[str, Any]], list[Judged], set[str]]:
    """The locale's ended calls of the period, each of their caller utterances judged, and
    the ids of the calls with a misroute signal."""
    calls = [c for c in store.list_calls(CallFilter(since=since, until=until, limit=_MAX_CALLS))
             if c.get("locale") == locale and c["status"] != LIVE]
    events = store.events_by_call(EVENT_KINDS, since, until)
    labels = {(lb["call_id"], lb["turn"]): lb for lb in store.list_labels()
              if lb.get("turn") is not None}  # oldest first: the latest label wins
    judged, flagged = [], set()
    for call in calls:
        for n, item in call_items(call, events.get(call["call_id"], [])).items():
            if item.flagged:
                flagged.add(call["call_id"])
            label = labels.get((call["call_id"], n))
            dialect = item.dialect or "unknown"
            if label is None:
                verdict: Verdict = "pending" if item.flagged else "assumed"
                truth = None if item.flagged else item.intent
            elif label.get("intent"):
                truth = label["intent"]
                verdict = "right" if truth == item.intent else "wrong"
            else:  # an ASR error or a dialect synonym the engine lacked
                truth, verdict = None, "wrong"
            judged.append(Judged(call["started_at"], truth, item.intent, dialect, verdict))
    return calls, judged, flagged


def trends(store: CallStore, locale: str, since: float, until: float,
           promotions_log: Path | None = None) -> dict[str, Any]:
    """The Figures page's time series and confusion matrix for one locale's calls started
    in [since, until), by the bank's days or weeks (``IVR_TIMEZONE``)."""
    calls, judged, flagged = judge(store, locale, since, until)
    weekly = (until - since) / 86400 > DAILY_UP_TO_DAYS
    periods = _periods(since, until, weekly)
    index = {p: i for i, p in enumerate(periods)}

    def slot(at: float) -> int:
        return index[_period(at, weekly)]

    ended, served, misrouted = ([0] * len(periods) for _ in range(3))
    for call in calls:
        i = slot(call["started_at"])
        ended[i] += 1
        served[i] += call.get("outcome") == "self_service"
        misrouted[i] += call["call_id"] in flagged
    overall = _Tally(len(periods))
    per_intent: dict[str, _Tally] = defaultdict(lambda: _Tally(len(periods)))
    per_dialect: dict[str, _Tally] = defaultdict(lambda: _Tally(len(periods)))
    for j in judged:
        i = slot(j.at)
        overall.add(i, j.verdict)
        per_dialect[j.dialect].add(i, j.verdict)
        if j.intent:
            per_intent[j.intent].add(i, j.verdict)
    return {
        "locale": locale, "since": since, "until": until,
        "bucket": "week" if weekly else "day", "periods": periods,
        "timezone": zone.zone_name(),
        "calls": ended,
        "containment": [_share(s, e) for s, e in zip(served, ended, strict=True)],
        "misroute_rate": [_share(m, e) for m, e in zip(misrouted, ended, strict=True)],
        "accuracy": overall.as_dict(),
        "per_intent": {k: v.as_dict() for k, v in sorted(per_intent.items())},
        "per_dialect": {k: v.as_dict() for k, v in sorted(per_dialect.items())},
        "confusion": confusion(judged),
        "promotions": promotions(promotions_log, locale) if promotions_log else [],
    }


class _Tally:
    """Verdicts per period."""

    def __init__(self, periods: int) -> None:
        self.counts = [Counter[str]() for _ in range(periods)]

    def add(self, i: int, verdict: Verdict) -> None:
        self.counts[i][verdict] += 1

    def as_dict(self) -> dict[str, Any]:
        total: Counter[str] = sum(self.counts, Counter())
        return {"series": [_accuracy(c) for c in self.counts],
                "judged": [_judged(c) for c in self.counts],
                "pending": [c["pending"] for c in self.counts],
                "total": {"accuracy": _accuracy(total), "judged": _judged(total),
                          "wrong": total["wrong"], "pending": total["pending"]}}


def _judged(c: Counter[str]) -> int:
    return c["right"] + c["assumed"] + c["wrong"]


def _accuracy(c: Counter[str]) -> float | None:
    return _share(c["right"] + c["assumed"], _judged(c))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def confusion(judged: Iterable[Judged]) -> dict[str, Any]:
    """Expected (rows) by understood (columns) intent, over the utterances trainers
    labelled with an intent: the assumed-right ones would only fill the diagonal."""
    pairs = Counter((j.intent, j.predicted or "none") for j in judged
                    if j.verdict in ("right", "wrong") and j.intent)
    labels = sorted({a for a, _ in pairs} | {b for _, b in pairs})
    return {"labels": labels,
            "counts": [[pairs[(a, b)] for b in labels] for a in labels]}


def promotions(log: Path, locale: str) -> list[dict[str, Any]]:
    """Each promotion of the locale's models with its held-out accuracy (before and after),
    oldest first; a line that is not JSON is skipped (the log is appended to by hand too)."""
    if not log.is_file():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("locale") == locale:
            heldout = entry.get("heldout") or {}
            out.append({"at": entry.get("at"), "model": entry.get("model"),
                        "by": entry.get("by"), "forced": entry.get("forced"),
                        "live": heldout.get("live"), "candidate": heldout.get("candidate")})
    return out


def _period(at: float, weekly: bool) -> str:
    day = zone.day(at)  # the bank's day: 23:30 UTC is tomorrow in Shanghai
    return (day - timedelta(days=day.weekday())).isoformat() if weekly else day.isoformat()


def _periods(since: float, until: float, weekly: bool) -> list[str]:
    """Every period from the one holding ``since`` to the one holding ``until``, empty ones
    included (a chart must show a day without calls as such)."""
    first, last = (date.fromisoformat(_period(t, weekly)) for t in (since, until - 1e-6))
    step = timedelta(days=7 if weekly else 1)
    out = []
    while first <= last:
        out.append(first.isoformat())
        first += step
    return out
