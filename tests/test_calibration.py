"""Confidence bands and the calibration figures `ivr evaluate` reports, on rows whose
answers are known, and the promotion gate's rejection-set rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.dialogue.confidence import Band, ConfidenceBands
from ivr.errors import DataFileError
from ivr.trainer.calibration import (
    Scored,
    band_outcomes,
    expected_calibration_error,
    precision_recall,
    rejection,
    reliability,
)
from ivr.trainer.promotion import gate

BANDS = ConfidenceBands(accept=0.8, confirm=0.45, control_accept=0.6, costly_accept=0.95)
LOCALES = Path(__file__).resolve().parent.parent / "locales"


@pytest.mark.parametrize(("intent", "confidence", "band"), [
    ("check_balance", 0.97, Band.ACCEPT),
    ("check_balance", 0.70, Band.CONFIRM),      # "您是要查询余额，对吗？"
    ("check_balance", 0.30, Band.REJECT),
    ("nlu_fallback", 0.99, Band.REJECT),
    ("out_of_scope", 0.99, Band.REJECT),        # not acted on: "我可以帮您..."
    ("report_lost_card", 0.90, Band.CONFIRM),   # freezing a card: confirmed below 0.95
    ("goodbye", 0.94, Band.CONFIRM),            # ending the call too
    ("fraud_report", 0.96, Band.ACCEPT),
    ("affirm", 0.65, Band.ACCEPT),              # a clear yes is acted on
    ("affirm", 0.50, Band.REJECT),              # an unclear one is asked again, not confirmed
    ("deny", 0.50, Band.REJECT),
])
def test_bands(intent: str, confidence: float, band: Band) -> None:
    assert BANDS.band(intent, confidence) is band


def test_a_transcript_heard_with_little_confidence_is_not_trusted() -> None:
    assert BANDS.band("check_balance", 0.99, asr_confidence=0.95) is Band.ACCEPT
    assert BANDS.band("check_balance", 0.99, asr_confidence=0.30) is Band.CONFIRM
    assert BANDS.band("affirm", 0.99, asr_confidence=0.30) is Band.REJECT


def test_the_locales_thresholds_are_data(tmp_path: Path) -> None:
    for locale in ("zh", "ko"):
        bands = ConfidenceBands.for_locale(LOCALES / f"{locale}.yml")
        assert 0 < bands.confirm <= bands.accept <= bands.costly_accept < 1
    bad = tmp_path / "xx.yml"
    bad.write_text("confidence:\n  accept: 1.5\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"xx\.yml: confidence\.accept must be between"):
        ConfidenceBands.for_locale(bad)
    bad.write_text("confidence:\n  accept: 0.3\n  confirm: 0.5\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="confirm <= accept"):
        ConfidenceBands.for_locale(bad)


def rows() -> list[Scored]:
    return [
        Scored("check_balance", "check_balance", 0.95),   # accepted, right
        Scored("check_balance", "credit_card_bill", 0.91),  # accepted wrongly
        Scored("complaint", "complaint", 0.70),           # confirmed needlessly
        Scored("complaint", "fraud_report", 0.60),        # confirmed, caught
        Scored("loan_inquiry", "nlu_fallback", 0.45),     # rejected though... it was wrong
        Scored("out_of_scope", "nlu_fallback", 0.45),     # declined: right
        Scored("nlu_fallback", "affirm", 0.99),           # a filler taken for a yes
        Scored("nlu_fallback", "out_of_scope", 0.88),     # declined: right
    ]


def test_declining_is_right_where_nothing_should_be_understood() -> None:
    assert [r.right for r in rows()] == [True, False, True, False, False, True, False, True]


def test_band_outcomes() -> None:
    out = band_outcomes(rows(), BANDS)
    assert (out["accept"], out["confirm"], out["reject"]) == (3, 2, 3)
    assert (out["accepted_wrongly"], out["confirmed_needlessly"],
            out["confirmed_and_caught"], out["rejected_but_right"]) == (2, 1, 1, 0)
    assert out["false_accept_rate"] == 0.25 and out["confirm_rate"] == 0.25


def test_the_rejection_set() -> None:
    out = rejection(rows(), BANDS)
    assert out == {"n": 3, "declined": round(2 / 3, 4), "false_accept_rate": round(1 / 3, 4)}


def test_expected_calibration_error() -> None:
    # Two bins: 0.9-1.0 holds 0.95 (right), 0.91 (wrong), 0.99 (wrong): confidence 0.95,
    # accuracy 1/3; 0.6-0.7 holds 0.60 (wrong); 0.7-0.8 holds 0.70 (right); 0.8-0.9 holds
    # 0.88 (out_of_scope, a rejection: no claim, left out).
    bins = reliability(rows())
    filled = {b["from"]: b for b in bins if b["n"]}
    assert set(filled) == {0.6, 0.7, 0.9}
    assert filled[0.9]["n"] == 3 and filled[0.9]["accuracy"] == round(1 / 3, 4)
    expected = (3 / 5) * abs(1 / 3 - 0.95) + (1 / 5) * 0.60 + (1 / 5) * abs(1 - 0.70)
    assert expected_calibration_error(bins) == pytest.approx(expected, abs=1e-3)
    assert expected_calibration_error(reliability([])) == 0.0


def test_precision_recall_f1() -> None:
    prf = precision_recall(rows())
    assert prf["check_balance"] == {"precision": 1.0, "recall": 0.5, "f1": round(2 / 3, 4),
                                    "support": 2}
    # 3 meant nothing, 2 of them declined; 3 declined, 1 of them (a loan question) wrongly
    assert (prf["rejected"]["recall"], prf["rejected"]["precision"]) == (0.6667, 0.6667)
    assert prf["affirm"]["precision"] == 0.0


def test_the_gate_refuses_more_false_accepts_on_the_rejection_set() -> None:
    same = {"live": 0.97, "candidate": 0.97, "delta": 0.0, "examples": 400, "more_errors": 0}
    assert gate(same, "zh-new.tar.gz", "zh-old.tar.gz") is None
    worse = {**same, "rejection_false_accept_rate": {"live": 0.01, "candidate": 0.05,
                                                     "delta": -0.04}}
    assert gate(worse, "zh-new.tar.gz", "zh-old.tar.gz") == (
        "zh-new.tar.gz acts on more of the rejection set than the live zh-old.tar.gz: 0.050 of "
        "fillers, chit-chat and requests the bank does not serve taken as requests, against "
        "0.010")
    better = {**same, "rejection_false_accept_rate": {"live": 0.05, "candidate": 0.01,
                                                      "delta": 0.04}}
    assert gate(better, "zh-new.tar.gz", "zh-old.tar.gz") is None
    less_accurate = {**same, "candidate": 0.96, "delta": -0.01, "more_errors": 4}
    assert "is worse than the live" in gate(less_accurate, "zh-new.tar.gz", "zh-old.tar.gz")
