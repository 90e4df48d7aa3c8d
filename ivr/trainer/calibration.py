"""How far the classifier's confidence can be trusted, measured on a held-out set:
expected calibration error, a reliability diagram, what each confidence band did, the
rejection set, and precision, recall and F1 per intent (``ivr evaluate``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.dialogue.confidence import REJECTIONS, Band, ConfidenceBands

BINS = 10


@dataclass(frozen=True)
class Scored:
    """One held-out utterance as the model took it."""

    expected: str
    predicted: str
    confidence: float

    @property
    def right(self) -> bool:
        """Right, where "not understood" and "not something the bank does" are one answer:
        either way the engine does not act, says what it can do and counts a strike."""
        return self.predicted == self.expected or (
            self.expected in REJECTIONS and self.predicted in REJECTIONS)


def reliability(rows: list[Scored]) -> list[dict[str, Any]]:
    """Per confidence bin (tenths): how many, mean confidence, accuracy. Rasa's fallback
    reports its threshold as confidence, so rejections are left out: they are no claim."""
    bins: list[list[Scored]] = [[] for _ in range(BINS)]
    for row in rows:
        if row.predicted not in REJECTIONS:
            bins[min(int(row.confidence * BINS), BINS - 1)].append(row)
    return [{"from": i / BINS, "to": (i + 1) / BINS, "n": len(b),
             "confidence": round(sum(r.confidence for r in b) / len(b), 4) if b else None,
             "accuracy": round(sum(r.right for r in b) / len(b), 4) if b else None}
            for i, b in enumerate(bins)]


def expected_calibration_error(bins: list[dict[str, Any]]) -> float:
    """Σ (n_bin / n) · |accuracy_bin − confidence_bin|: 0 is perfectly calibrated."""
    n = sum(b["n"] for b in bins)
    if not n:
        return 0.0
    return round(sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["n"]),
                 4)


def band_outcomes(rows: list[Scored], bands: ConfidenceBands) -> dict[str, Any]:
    """What each band did: accepted wrongly (acted on a wrong understanding), confirmed
    needlessly (asked about a right one), rejected what it had right, and the share of
    utterances confirmed (extra turns for callers)."""
    counts: Counter[str] = Counter()
    for row in rows:
        band = bands.band(row.predicted, row.confidence)
        counts[band.value] += 1
        if band is Band.ACCEPT and not row.right:
            counts["accepted_wrongly"] += 1
        elif band is Band.CONFIRM and row.right:
            counts["confirmed_needlessly"] += 1
        elif band is Band.CONFIRM:
            counts["confirmed_and_caught"] += 1
        elif band is Band.REJECT and row.right and row.expected not in REJECTIONS:
            counts["rejected_but_right"] += 1
    n = len(rows) or 1
    out: dict[str, Any] = {k: counts[k] for k in ("accept", "confirm", "reject",
                                                  "accepted_wrongly", "confirmed_needlessly",
                                                  "confirmed_and_caught",
                                                  "rejected_but_right")}
    out["false_accept_rate"] = round(counts["accepted_wrongly"] / n, 4)
    out["confirm_rate"] = round(counts["confirm"] / n, 4)
    out["thresholds"] = {"confirm": bands.confirm, "accept": bands.accept,
                         "control_accept": bands.control_accept,
                         "costly_accept": bands.costly_accept}
    return out


def rejection(rows: list[Scored], bands: ConfidenceBands) -> dict[str, Any]:
    """The rejection set (fillers, chit-chat, requests the bank does not serve): how much of
    it the engine declined, and how much it acted on (the false-accept rate the promotion
    gate watches)."""
    mine = [r for r in rows if r.expected in REJECTIONS]
    declined = sum(r.predicted in REJECTIONS
                   or bands.band(r.predicted, r.confidence) is Band.REJECT for r in mine)
    accepted = sum(bands.band(r.predicted, r.confidence) is Band.ACCEPT and not r.right
                   for r in mine)
    n = len(mine)
    return {"n": n, "declined": round(declined / n, 4) if n else None,
            "false_accept_rate": round(accepted / n, 4) if n else None}


def precision_recall(rows: list[Scored]) -> dict[str, dict[str, Any]]:
    """Per intent (rejections as one class, ``rejected``)."""
    def label(name: str) -> str:
        return "rejected" if name in REJECTIONS else name

    true_pos: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    for row in rows:
        gold, guess = label(row.expected), label(row.predicted)
        expected[gold] += 1
        predicted[guess] += 1
        true_pos[gold] += gold == guess
    out = {}
    for name in sorted(set(expected) | set(predicted)):
        p = true_pos[name] / predicted[name] if predicted[name] else 0.0
        r = true_pos[name] / expected[name] if expected[name] else 0.0
        out[name] = {"precision": round(p, 4), "recall": round(r, 4),
                     "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
                     "support": expected[name]}
    return out


def save_reliability_diagram(bins: list[dict[str, Any]], ece: float, path: Path) -> Path:
    """Accuracy against confidence per bin, the diagonal being perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]})
    filled = [b for b in bins if b["n"]]
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.bar([b["from"] for b in filled], [b["accuracy"] for b in filled], width=1 / BINS,
            align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    top.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o-",
             color="darkred", label="mean confidence")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"Reliability (held-out), ECE {ece:.3f}")
    top.legend(loc="upper left")
    bottom.bar([b["from"] for b in bins], [b["n"] for b in bins], width=1 / BINS,
               align="edge", edgecolor="black")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("utterances")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
