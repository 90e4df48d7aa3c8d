"""Coverage-guided fuzzing of the masker (SPEC rule 3: no PIN or full card number in any
log, transcript or handoff).

The input is free text (the bytes decoded as UTF-8, bad sequences replaced). Invariants
(an exception or a failed assert is a crash): after mask_text no run of six or more digits
(Arabic, full-width, spoken Chinese or Korean; up to three spaces or dashes between) is
left; text without such a run comes back unchanged; masking twice changes nothing;
every_digit=True leaves no digit and touches nothing else; mask_card keeps at most the
last four digits. Run: .venv/bin/python fuzz/fuzz_masking.py -max_total_time=600
fuzz/corpus/masking (docs/fuzzing.md).
"""

from __future__ import annotations

import re
import sys

import atheris

with atheris.instrument_imports(include=["ivr"]):
    from ivr.masking import mask_card, mask_text

KO_DIGITS = "공영일이삼사오육륙칠팔구"
DIGITS = "0123456789０１２３４５６７８９零〇一二三四五六七八九幺两" + KO_DIGITS
_SEPARATOR = re.compile(r"[\s-]")


def digit_runs(text: str) -> list[str]:
    """Runs of digits of any script, up to three spaces or dashes between two of them;
    written apart from the masker so that the two can disagree."""
    runs: list[str] = []
    run, gap = "", 0
    for c in text:
        if c in DIGITS:
            run, gap = run + c, 0
        elif run and gap < 3 and _SEPARATOR.fullmatch(c):
            gap += 1
        else:
            if run:
                runs.append(run)
            run, gap = "", 0
    return [*runs, run] if run else runs


def check(data: bytes) -> int:
    """Assert the invariants on one input; how many long runs it held."""
    text = data.decode("utf-8", "replace")
    masked = mask_text(text)
    long_runs = sum(len(run) >= 6 for run in digit_runs(text))
    assert all(len(run) < 6 for run in digit_runs(masked)), masked
    assert long_runs or masked == text  # amounts and dates stay readable
    assert mask_text(masked) == masked
    every = mask_text(text, every_digit=True)
    assert len(every) == len(text)
    assert all(a == b or (b == "*" and a in DIGITS) for a, b in zip(text, every, strict=True))
    assert not any(c in DIGITS and c not in KO_DIGITS for c in every)
    assert not any(word in set(KO_DIGITS) for word in every.split())
    card = mask_card(text)
    digits = [c for c in text if c.isdecimal()]
    assert card == "*" * max(len(digits) - 4, 0) + "".join(digits[-4:])
    return long_runs


def TestOneInput(data: bytes) -> None:
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
