"""The monthly "voice of the customer": what callers asked for and where the engine failed
them, from the call log, as a CSV and a chart image for managers."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ivr.calllog.store import CallFilter, CallStore
from ivr.core import zone
from ivr.core.events import MisrouteSignal
from ivr.errors import IvrError

FAILURES = ("no_match", "no_input", "verification_failed", "verification_locked",
            "engine_error")
SIGNALS = ("correction", "agent_after_answer", "low_confidence", "no_match")
COLUMNS = ("intent", "calls", "share", "self_service", "escalated", "containment",
           *(f"escalated_{r}" for r in FAILURES), *(f"signal_{s}" for s in SIGNALS),
           "misrouted_calls", "dialects")


@dataclass(frozen=True)
class Month:
    start: float
    end: float
    name: str  # 2026-11

    @classmethod
    def parse(cls, text: str) -> Month:
        """The month in the bank's zone (``IVR_TIMEZONE``): a call at 23:30 UTC on the
        last day of October is a November call in Shanghai."""
        try:
            first = datetime.strptime(text, "%Y-%m").date()
        except ValueError:
            raise IvrError(f"month {text!r}: write it as 2026-11") from None
        following = first.replace(year=first.year + first.month // 12,
                                  month=first.month % 12 + 1)
        return cls(zone.midnight(first), zone.midnight(following), text)


def voice_of_customer(store: CallStore, month: Month, locale: str | None = None
                      ) -> list[dict[str, Any]]:
    """One row per intent (the call's topic; "(none)" when the caller never said), most
    asked first, and a final "all" row."""
    calls = [c for c in store.list_calls(CallFilter(since=month.start, until=month.end,
                                                    limit=10_000_000))
             if c["status"] != "live" and (locale is None or c["locale"] == locale)]
    topic = {c["call_id"]: c.get("intent") or "(none)" for c in calls}
    signals: dict[str, Counter[str]] = defaultdict(Counter)
    misrouted: dict[str, set[str]] = defaultdict(set)
    for e in store.events_of(MisrouteSignal, month.start):
        if e.call_id in topic and e.at < month.end:
            signals[topic[e.call_id]][e.signal] += 1
            misrouted[topic[e.call_id]].add(e.call_id)
    by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        by_intent[topic[c["call_id"]]].append(c)
    rows = [_row(name, group, signals[name], misrouted[name], len(calls))
            for name, group in sorted(by_intent.items(), key=lambda kv: -len(kv[1]))]
    everything = Counter()
    for counts in signals.values():
        everything.update(counts)
    rows.append(_row("all", calls, everything, set().union(*misrouted.values()), len(calls)))
    return rows


def _row(name: str, calls: list[dict[str, Any]], signals: Counter[str], misrouted: set[str],
         total: int) -> dict[str, Any]:
    outcomes = Counter(c.get("outcome") for c in calls)
    reasons = Counter(c.get("reason") for c in calls if c.get("outcome") == "escalated")
    dialects = Counter(c.get("dialect") for c in calls if c.get("dialect"))
    ended = len(calls)
    return {
        "intent": name,
        "calls": ended,
        "share": round(ended / total, 4) if total else 0.0,
        "self_service": outcomes["self_service"],
        "escalated": outcomes["escalated"],
        "containment": round(outcomes["self_service"] / ended, 4) if ended else 0.0,
        **{f"escalated_{r}": reasons[r] for r in FAILURES},
        **{f"signal_{s}": signals[s] for s in SIGNALS},
        "misrouted_calls": len(misrouted),
        "dialects": " ".join(f"{d}:{n}" for d, n in dialects.most_common()),
    }


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """UTF-8 with a byte-order mark, so Excel opens the Chinese as Chinese."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue(), encoding="utf-8-sig")
    return path


def write_chart(rows: list[dict[str, Any]], month: Month, path: Path) -> Path:
    """Calls per intent, self-served against escalated, with the escalations that were
    the engine's failures (no match, no input, ...) marked apart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["intent"] != "all"][:20]
    names = [r["intent"] for r in shown][::-1]
    served = [r["self_service"] for r in shown][::-1]
    failed = [sum(r[f"escalated_{f}"] for f in FAILURES) for r in shown][::-1]
    routed = [r["escalated"] - f for r, f in zip(shown[::-1], failed, strict=True)]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.6))
    ax.barh(names, served, color="#2e7d32", label="self-served")
    ax.barh(names, routed, left=served, color="#1565c0", label="sent to an agent")
    ax.barh(names, failed, left=[s + r for s, r in zip(served, routed, strict=True)],
            color="#c62828", label="escalated because the engine failed")
    total = next((r for r in rows if r["intent"] == "all"), None)
    title = f"What callers asked for, {month.name}"
    if total and total["calls"]:
        title += (f": {total['calls']} calls, containment {total['containment']:.0%}, "
                  f"misrouted {total['misrouted_calls'] / total['calls']:.0%}")
    ax.set_title(title)
    ax.set_xlabel("calls")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def export(store: CallStore, month: Month, out_dir: Path, locale: str | None = None
           ) -> tuple[Path, Path, list[dict[str, Any]]]:
    rows = voice_of_customer(store, month, locale)
    stem = f"voc-{month.name}" + (f"-{locale}" if locale else "")
    return (write_csv(rows, out_dir / f"{stem}.csv"),
            write_chart(rows, month, out_dir / f"{stem}.png"), rows)


def this_month() -> str:
    return zone.local(time.time()).strftime("%Y-%m")
