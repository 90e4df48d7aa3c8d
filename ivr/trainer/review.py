"""The review queue: the utterances of logged calls worth a trainer's look, grouped by what
the model made of them and by wording, so a trainer labels a cluster, not a line.

An item is a ``say`` turn whose misroute signals (ivr/trainer/review_signals.py: the dialogue's,
the caller's next words, how the call ended, the agent desktop's feedback) weigh enough;
it carries them as ``why``. docs/review.md has the rules, weights and thresholds. Every
function here is synchronous (the console runs them in a thread).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ivr.calllog.store import LIVE, CallFilter, CallStore
from ivr.core.events import AgentFeedback, CallEvent, TurnTaken
from ivr.errors import IvrError, Remedy
from ivr.trainer.review_signals import (
    EVENT_KINDS,
    QUEUE_AT,
    SIMILARITY,
    Evidence,
    canonical,
    corrections_for,
    evidence,
    likely_intent,
    score,
    similarity,
)

# Wordings at least SIMILARITY close are one cluster: 我想开个户 / 我想开个账户 is 0.91,
# 手续费多少 / 转账限额是多少 0.33.
_MAX_CALLS = 10_000_000  # the period bounds the calls read, not a page size


class ReviewError(IvrError):
    """A cluster or item that is not in the review queue (or not a caller utterance)."""


@dataclass
class Item:
    """One caller utterance worth a look (already masked, as logged)."""

    call_id: str
    n: int  # the turn
    started_at: float  # the call's
    locale: str
    text: str
    normalized: str
    dialect: str | None
    intent: str | None
    confidence: float | None
    ranking: list[dict[str, Any]]  # the top three
    signals: list[str]  # the names of ``why``'s signals
    asr: dict[str, Any] | None  # raw, alternatives, audio_ms (+ recording of the call)
    next: dict[str, Any]  # the next turn, the call's outcome, the agent desktop's feedback
    # Why it is queued: each signal with its weight and evidence turn (Evidence.as_dict).
    why: list[dict[str, Any]] = field(default_factory=list)
    score: float = 0.0  # what the signals weigh together
    likely_intent: str | None = None  # what a correction or repeat says was meant

    @property
    def key(self) -> str:
        return f"{self.call_id}:{self.n}"

    @property
    def flagged(self) -> bool:
        """Whether its signals weigh enough for the queue (a weak one alone does not)."""
        return self.score >= QUEUE_AT

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, **asdict(self)}


@dataclass
class Cluster:
    """Items of one predicted intent with similar wording; ``id`` names it for a label."""

    id: str
    intent: str
    representative: str  # the normalized text the others were compared with
    items: list[Item] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len({i.call_id for i in self.items})

    def texts(self, limit: int = 5) -> list[str]:
        """Its distinct wordings, most frequent first."""
        return [t for t, _ in Counter(i.text for i in self.items).most_common(limit)]

    @property
    def score(self) -> float:
        return round(sum(i.score for i in self.items), 2)

    def summary(self) -> dict[str, Any]:
        signals = Counter(s for i in self.items for s in i.signals)
        likely = Counter(i.likely_intent for i in self.items if i.likely_intent)
        return {"id": self.id, "intent": self.intent, "calls": self.calls,
                "items": len(self.items), "representative": self.representative,
                "texts": self.texts(), "signals": dict(signals.most_common()),
                "score": self.score, "likely_intents": dict(likely.most_common())}

    def as_dict(self) -> dict[str, Any]:
        return {**self.summary(), "items_detail": [i.as_dict() for i in self.items]}


def review_queue(store: CallStore, locale: str, since: float | None,
                 until: float | None = None, locale_file: Path | None = None) -> list[Cluster]:
    """The locale's unlabelled items of calls started in the period, clustered, the
    clusters whose signals weigh most first. ``locale_file``: the project's
    ``locales/<locale>.yml`` (how callers correct themselves; default the engine's)."""
    return cluster_items(review_items(store, locale, since, until, locale_file))


def review_items(store: CallStore, locale: str, since: float | None,
                 until: float | None = None, locale_file: Path | None = None) -> list[Item]:
    """Every flagged item of the period not yet labelled (a label of one of its turns)."""
    calls = [c for c in store.list_calls(CallFilter(since=since, until=until, limit=_MAX_CALLS))
             if c.get("locale") == locale and c["status"] != LIVE]
    events = store.events_by_call(EVENT_KINDS, since, until)  # one query for the period
    labelled = {(lb["call_id"], lb["turn"]) for lb in store.list_labels(since)
                if lb.get("turn") is not None}
    items = []
    for call in calls:
        found = call_items(call, events.get(call["call_id"], []), locale_file)
        items += [item for item in found.values()
                  if item.flagged and (item.call_id, item.n) not in labelled]
    return items


def call_items(call: dict[str, Any], events: list[CallEvent],
               locale_file: Path | None = None) -> dict[int, Item]:
    """Every caller utterance of a call as an item, by turn, with its signals (none for
    most; ``Item.flagged`` says whether they weigh enough for the queue)."""
    turns = {e.n: e for e in events if isinstance(e, TurnTaken)}
    feedback = [e for e in events if isinstance(e, AgentFeedback)]
    found = evidence(events, corrections_for(call.get("locale") or "zh", locale_file),
                     call.get("outcome"))
    says = sorted(n for n, t in turns.items() if "say" in t.input)
    outcome = {k: call.get(k) for k in ("outcome", "queue", "reason", "intent")}
    return {n: _item(call, turns[n], turns.get(n + 1), found.get(n, []), outcome, feedback)
            for n in says}


def _item(call: dict[str, Any], turn: TurnTaken, following: TurnTaken | None,
          found: list[Evidence], outcome: dict[str, Any],
          feedback: list[AgentFeedback]) -> Item:
    asr = dict(turn.asr or {})
    if call.get("recording"):  # relative to IVR_RECORDINGS; asr.audio_ms is the snippet
        asr["recording"] = call["recording"]
    text = turn.input["say"]
    return Item(
        call_id=call["call_id"], n=turn.n, started_at=call["started_at"],
        locale=call.get("locale") or "", text=text, normalized=turn.normalized or text,
        dialect=turn.dialect, intent=turn.intent,
        confidence=turn.confidence, ranking=(turn.intent_ranking or [])[:3],
        signals=[ev.signal for ev in found], asr=asr or None,
        next={"turn": {"n": following.n, "input": following.input,
                       "intent": following.intent} if following else None,
              "call": outcome,
              "feedback": [{"kind": f.kind, "from_queue": f.from_queue,
                            "to_queue": f.to_queue, "by": f.agent}
                           for f in feedback]},
        why=[ev.as_dict() for ev in found], score=score(found),
        likely_intent=likely_intent(turn.intent, found))


def cluster_items(items: list[Item]) -> list[Cluster]:
    """Group by predicted intent, then greedily by wording: each item joins the first
    cluster whose representative it is ``SIMILARITY``-close to, else starts one. The most
    frequent wordings are placed first, so they become the representatives (and the ids
    stay the same while they are in the queue)."""
    by_intent: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_intent[item.intent or "none"].append(item)
    clusters: list[Cluster] = []
    for intent, group in by_intent.items():
        freq = Counter(canonical(i.normalized) for i in group)
        group.sort(key=lambda i: (-freq[canonical(i.normalized)], canonical(i.normalized),
                                  i.started_at, i.call_id, i.n))
        own: list[Cluster] = []
        for item in group:
            home = next((c for c in own
                         if similarity(c.representative, item.normalized) >= SIMILARITY), None)
            if home is None:
                home = Cluster(_cluster_id(intent, item.normalized), intent, item.normalized)
                own.append(home)
            home.items.append(item)
        clusters += own
    for c in clusters:
        c.items.sort(key=lambda i: (-i.score, i.started_at, i.call_id, i.n))
    return sorted(clusters, key=lambda c: (-c.score, -c.calls, -len(c.items), c.id))


def _cluster_id(intent: str, representative: str) -> str:
    digest = hashlib.sha1(f"{intent}\n{canonical(representative)}".encode()).hexdigest()
    return f"c{digest[:10]}"


def find_cluster(clusters: list[Cluster], cluster_id: str) -> Cluster:
    """A cluster by its id or an unambiguous prefix of it."""
    found = [c for c in clusters if c.id.startswith(cluster_id)] if cluster_id else []
    exact = [c for c in found if c.id == cluster_id]
    if exact or len(found) == 1:
        return (exact or found)[0]
    if found:
        raise ReviewError(f"cluster id {cluster_id!r} is ambiguous: give more of it")
    raise ReviewError(f"no cluster {cluster_id!r} in the review queue (labelled already, or "
                      "out of the period)", Remedy("review_list", ": see `ivr review list`"))


def find_item(store: CallStore, key: str, locale_file: Path | None = None) -> Item:
    """The utterance ``CALL_ID:TURN`` (a call id prefix of 6+ characters will do), whether
    or not it is in the queue."""
    call_id, _, n = key.rpartition(":")
    if not call_id or not n.isdigit():
        raise ReviewError(f"{key!r}: name an utterance as CALL_ID:TURN, e.g. 3f2a9c:2")
    call = store.find_call(call_id)
    item = call_items(call, store.events(call["call_id"]), locale_file).get(int(n))
    if item is None:
        raise ReviewError(f"call {call['call_id']} has no caller utterance at turn {n}")
    return item


def resolve(store: CallStore, target: str, locale: str, since: float | None,
            until: float | None = None, locale_file: Path | None = None
            ) -> tuple[list[Item], str | None]:
    """What a label names: ``CALL_ID:TURN`` (one item), else a cluster id of the queue;
    returns the items and the cluster id (None for one item)."""
    if ":" in target:
        return [find_item(store, target, locale_file)], None
    cluster = find_cluster(review_queue(store, locale, since, until, locale_file), target)
    return cluster.items, cluster.id
