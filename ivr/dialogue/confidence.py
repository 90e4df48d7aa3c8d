"""Accept, confirm or reject: what the engine does with an understanding, by how sure it is.

Every commercial IVR has three bands. At or above ``accept`` the engine acts; from
``confirm`` up to it, it asks "您是要查询信用卡账单，对吗？" and acts only on an explicit yes;
below ``confirm`` (and for Rasa's own fallback) it has not understood: a no-match toward
SPEC rule 1. Costly or irreversible actions (freezing a card, the fraud queue, ending the
call) are confirmed below a higher band, ``costly_accept``.

The figures are data, per locale, in ``locales/<locale>.yml`` under ``confidence:``, set
from the held-out set: ``ivr evaluate`` prints what each band did there (docs/nlu.md).
The recogniser's confidence counts too: an utterance heard with low confidence is not
trusted more than it was heard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from ivr.dialogue.routing import TOPICS
from ivr.errors import DataFileError
from ivr.yamlfile import read_mapping

# Not understood, or understood as something the bank does not do: either way the engine
# does not act, says what it can do, and counts a strike (SPEC rule 1).
REJECTIONS = frozenset({"nlu_fallback", "out_of_scope"})
# Answers that steer the dialogue itself. "您是说'是'吗？" helps nobody: one of these is
# acted on when it is clear (``control_accept``), else asked again (a yes or no counts
# only when explicit).
NEVER_CONFIRMED = frozenset({"affirm", "deny", "repeat", "main_menu", "inform"})


# Two topics compete, and the caller is asked "A or B?" instead of "A, right?", when the
# runner-up has at least this confidence and the two together at least CLARIFY_TOGETHER.
CLARIFY_RUNNER_UP = 0.25
CLARIFY_TOGETHER = 0.6


def competing_topics(ranking: list[dict[str, Any]]) -> list[str] | None:
    """The two topics a request may mean, when neither clearly wins (我想查账单)."""
    top = [r for r in ranking if r.get("name") not in REJECTIONS][:2]
    if len(top) == 2 and all(r["name"] in TOPICS for r in top):
        first, second = (float(r["confidence"]) for r in top)
        if second >= CLARIFY_RUNNER_UP and first + second >= CLARIFY_TOGETHER:
            return [top[0]["name"], top[1]["name"]]
    return None


class Band(str, Enum):
    ACCEPT = "accept"
    CONFIRM = "confirm"
    REJECT = "reject"


@dataclass(frozen=True)
class ConfidenceBands:
    accept: float = 0.80
    confirm: float = 0.45
    control_accept: float = 0.60
    costly_accept: float = 0.95
    costly: frozenset[str] = frozenset({"report_lost_card", "fraud_report", "goodbye"})
    asr_trust: float = 0.60  # a transcript heard with less confidence than this is confirmed
    # How a confirmation is asked ({label}: what the caller seems to want), asked again
    # once when the answer is neither yes nor no, and labels for intents that are not
    # topics (a topic says the knowledge base's label).
    ask: str = "您是要{label}，对吗？"
    again: str = "请您说“是”或者“不是”。您是要{label}吗？"
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_locale(cls, path: Path) -> ConfidenceBands:
        data = (read_mapping(path) if path.is_file() else {}).get("confidence") or {}
        if not isinstance(data, dict):
            raise DataFileError(f"{path.name}: confidence: must be a mapping")
        values: dict[str, Any] = {}
        for key in ("accept", "confirm", "control_accept", "costly_accept", "asr_trust"):
            if key in data:
                value = data[key]
                if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                    raise DataFileError(f"{path.name}: confidence.{key} must be between 0 "
                                        f"and 1 (got {value!r})")
                values[key] = float(value)
        if "costly" in data:
            if not isinstance(data["costly"], list):
                raise DataFileError(f"{path.name}: confidence.costly must be a list of intents")
            values["costly"] = frozenset(str(i) for i in data["costly"])
        for key in ("ask", "again"):
            if key in data:
                if not isinstance(data[key], str) or "{label}" not in data[key]:
                    raise DataFileError(f"{path.name}: confidence.{key} must be a sentence "
                                        "with {label} in it")
                values[key] = data[key]
        labels = data.get("labels") or {}
        if not isinstance(labels, dict):
            raise DataFileError(f"{path.name}: confidence.labels must map intents to words")
        values["labels"] = {str(k): str(v) for k, v in labels.items()}
        bands = replace(cls(), **values)
        if not (bands.confirm <= bands.accept <= bands.costly_accept
                and bands.confirm <= bands.control_accept):
            raise DataFileError(f"{path.name}: confidence needs confirm <= accept <= "
                                "costly_accept and confirm <= control_accept")
        return bands

    def band(self, intent: str, confidence: float, asr_confidence: float | None = None) -> Band:
        """What to do with ``intent`` understood with ``confidence`` (``asr_confidence``:
        how sure the recogniser was of the words, when it says)."""
        if intent in REJECTIONS or confidence < self.confirm:
            return Band.REJECT
        heard = asr_confidence is None or asr_confidence >= self.asr_trust
        if intent in NEVER_CONFIRMED:
            return Band.ACCEPT if confidence >= self.control_accept and heard else Band.REJECT
        accept = self.costly_accept if intent in self.costly else self.accept
        return Band.ACCEPT if confidence >= accept and heard else Band.CONFIRM


def asr_confidence(heard: dict[str, Any] | None) -> float | None:
    """How sure the recogniser was of its best transcript: the share of its n-best mass
    (decoder scores are log-likelihoods) on hypotheses saying the same words. None when it
    gave no n-best (a scripted recogniser, a grammar with one phrase, typed text)."""
    alternatives = (heard or {}).get("alternatives") or []
    scores = [(str(a.get("text", "")), float(a.get("score", 0.0))) for a in alternatives]
    if len(scores) < 2:
        return None
    best_text, top = scores[0][0], max(s for _, s in scores)
    weights = [(text, math.exp(score - top)) for text, score in scores]
    return sum(w for text, w in weights if text == best_text) / sum(w for _, w in weights)
