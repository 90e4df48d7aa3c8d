"""Why an utterance is in the review queue: the misroute signals a logged call carries, each
with a weight, the utterance it blames and the turn that is its evidence.

The signals come from what the log already has (docs/review.md has the table):
the dialogue's own misroute signals (``MisrouteSignal``: not understood, unsure), the
caller's next words (a correction, the same request again), how the call ended (right after
an answer, or with nothing done for the caller) and the agent desktop's ``AgentFeedback``.
An utterance is queued when its signals weigh ``QUEUE_AT`` or more; a weak signal alone (a
quick hang-up after an answer, which is also what a satisfied caller does) is not enough.

A plain request for an agent after an answer (the dialogue's ``agent_after_answer``) is
a preference, not evidence that the answer was wrong: it weighs nothing. The same request
with a contradiction (不对，转人工) is a correction.

Deterministic and synchronous: the same events always give the same signals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from ivr.core.events import AgentFeedback, CallEvent, HungUp, MisrouteSignal, Routed, TurnTaken
from ivr.dialogue.routing import TOPICS
from ivr.dialogue.utterance import Corrections
from ivr.errors import IvrError
from ivr.yamlfile import read_mapping

# How soon a hang-up after an answer counts as "right after" it (a caller who heard what
# they wanted usually says 谢谢 or 没有了 to "anything else?", which takes longer).
HANGUP_S = 5.0
# An utterance is queued when its signals weigh at least this.
QUEUE_AT = 1.0
# Two wordings this close (difflib ratio, punctuation and spaces dropped) are one request
# said again; the review queue clusters by the same figure (ivr/trainer/review.py).
SIMILARITY = 0.6
# A restating opener this long says what was meant even without a negation before it
# (我是说 / 我说的是); the one-character 是 of the locale's list would read every yes as one.
RESTATE_MIN_CHARS = 3
_NOT_WORDS = re.compile(r"[\W_]+")
_LOCALES = Path(__file__).resolve().parents[2] / "locales"  # the source checkout's


@dataclass(frozen=True)
class Signal:
    """One kind of misroute evidence: its weight and how the console and CLI name it."""

    name: str
    weight: float
    zh: str
    en: str


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("acd_wrong_queue", 3.0, "坐席反馈队列错误", "agent desktop: wrong queue"),
    Signal("acd_requeued", 3.0, "坐席转到其他队列", "agent desktop: requeued"),
    Signal("correction", 2.0, "更正", "the caller corrected it"),
    Signal("repeat_request", 1.5, "重复同一请求", "the caller said it again"),
    Signal("no_match", 1.0, "未识别", "not understood"),
    Signal("low_confidence", 1.0, "低置信度", "low confidence"),
    Signal("ended_unserved", 1.0, "未办理即结束", "the call ended with nothing done"),
    Signal("escalated_no_match", 0.5, "因未识别转人工", "escalated: not understood"),
    Signal("hangup_after_answer", 0.5, "答复后随即挂机", "hung up right after the answer"),
)}
# The dialogue's signals that weigh on the utterance carrying them.
_OWN = ("no_match", "low_confidence", "escalated_no_match")
# The event types the signals are read from.
EVENT_KINDS: tuple[type[CallEvent], ...] = (TurnTaken, MisrouteSignal, Routed, HungUp,
                                            AgentFeedback)


@dataclass(frozen=True)
class Evidence:
    """A signal on an utterance: ``turn`` is where it shows (the correction, the repeat,
    the hang-up's turn, or the utterance itself), with that turn's words and intent."""

    signal: str
    turn: int
    text: str | None = None
    intent: str | None = None

    @property
    def weight(self) -> float:
        return SIGNALS[self.signal].weight

    def as_dict(self) -> dict[str, Any]:
        s = SIGNALS[self.signal]
        return {"signal": self.signal, "weight": s.weight, "turn": self.turn,
                "text": self.text, "intent": self.intent, "zh": s.zh, "en": s.en}


@lru_cache(maxsize=8)
def _corrections(path: Path, mtime: float) -> Corrections:
    return Corrections.from_locale(read_mapping(path), path)


def corrections_for(locale: str, locale_file: Path | None = None) -> Corrections:
    """How the locale's callers correct themselves (``corrections:`` of the project's
    ``locales/<locale>.yml``, else the engine's own: the calls were understood with some);
    none when that is missing or broken (then only the dialogue's own corrections count)."""
    path = locale_file if locale_file and locale_file.is_file() else (
        _LOCALES / f"{locale}.yml")
    try:
        return _corrections(path, path.stat().st_mtime)
    except (OSError, IvrError):
        return Corrections()


def contradicts(text: str, corrections: Corrections) -> bool:
    """Whether the caller's words take back what was understood and say what they meant:
    不是，我要查信用卡账单 / 不对，转人工 / 我是说信用卡 / 잔액 말고 카드 대금이요."""
    text = text.strip()
    if not text or not text.replace("*", "").strip():
        return False
    if corrections.apply(text) != text:
        return True
    return any(len(r) >= RESTATE_MIN_CHARS and text.startswith(r) and len(text) > len(r)
               for r in corrections.restates)


def evidence(events: list[CallEvent], corrections: Corrections,
             outcome: str | None = None) -> dict[int, list[Evidence]]:
    """The signals of one call's events (in order), by the ``say`` turn each blames.
    ``outcome``: the call's (``self_service``, ``escalated``, ``hangup``)."""
    turns: dict[int, TurnTaken] = {}
    found: dict[int, list[Evidence]] = {}
    route_turn: int | None = None
    hangup_at: float | None = None
    dialogue_corrections: set[int] = set()
    own: list[tuple[int, str]] = []
    feedback: list[str] = []
    for e in events:
        match e:
            case TurnTaken():
                turns[e.n] = e
            case MisrouteSignal() if e.turn is not None:
                if e.signal == "correction":
                    dialogue_corrections.add(e.turn)
                elif e.signal in _OWN:
                    own.append((e.turn, e.signal))
            case Routed() if route_turn is None:
                route_turn = max(turns, default=None)  # the route follows the turn deciding it
            case HungUp() if hangup_at is None:
                hangup_at = e.at
            case AgentFeedback():
                feedback.append(f"acd_{e.kind}")
    says = sorted(n for n, t in turns.items() if "say" in t.input)

    def said_before(n: int, strictly: bool = True) -> int | None:
        return max((m for m in says if (m < n if strictly else m <= n)), default=None)

    def add(target: int | None, signal: str, turn: int) -> None:
        if target is None or signal not in SIGNALS:
            return
        if any(ev.signal == signal for ev in found.get(target, [])):
            return
        t = turns.get(turn)
        found.setdefault(target, []).append(
            Evidence(signal, turn, t.input.get("say") if t else None, t.intent if t else None))

    for n, signal in own:
        add(n if n in says else None, signal, n)
    for prev, n in pairwise(says):
        text = turns[n].input["say"]
        if n in dialogue_corrections or (not turns[n].input.get("masked")
                                         and contradicts(text, corrections)):
            add(prev, "correction", n)
        elif _similar(turns[prev], turns[n]):
            add(prev, "repeat_request", n)
    for n in sorted(dialogue_corrections - set(says)):  # corrected by keys: 0, or a menu
        add(said_before(n), "correction", n)
    deciding = route_turn if route_turn in says else (says[0] if says else None)
    for name in feedback:  # on the turn that decided the route, else the first words
        if deciding is not None:
            add(deciding, name, deciding)
    if says and outcome == "hangup":
        last = says[-1]
        if turns[last].intent not in TOPICS and not turns[last].input.get("masked"):
            # nothing the engine could act on (a masked entry is no words to label)
            add(last, "ended_unserved", last)
    served = [n for n, t in turns.items() if (t.slots or {}).get("topic_served")]
    if served and hangup_at is not None:
        n = max(served)
        if n == max(turns) and hangup_at - turns[n].at <= HANGUP_S:
            add(said_before(n, strictly=False), "hangup_after_answer", n)
    return found


def _similar(a: TurnTaken, b: TurnTaken) -> bool:
    """The same request said again: alike in wording (as normalized), not masked."""
    if a.input.get("masked") or b.input.get("masked"):
        return False
    x, y = (t.normalized or t.input["say"] for t in (a, b))
    return bool(canonical(x) and canonical(y)) and similarity(x, y) >= SIMILARITY


def canonical(text: str) -> str:
    """Text as wordings are compared: punctuation and spaces dropped."""
    return _NOT_WORDS.sub("", text)


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, canonical(a), canonical(b), autojunk=False).ratio()


def score(found: list[Evidence]) -> float:
    """What an utterance's signals weigh together."""
    return round(sum(ev.weight for ev in found), 2)


def likely_intent(intent: str | None, found: list[Evidence]) -> str | None:
    """What the caller probably meant: the topic a correction or repeat went on to (when
    it is not the one understood); None when nothing says."""
    for ev in sorted(found, key=lambda ev: -ev.weight):
        if ev.signal in ("correction", "repeat_request") and ev.intent in TOPICS and (
                ev.intent != intent):
            return ev.intent
    return None
