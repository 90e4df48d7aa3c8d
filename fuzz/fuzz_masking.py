"""Coverage-guided fuzzing of the masker (SPEC rule 3: no PIN or full card number in any
log, transcript or handoff).

The input is free text (the bytes decoded as UTF-8, bad sequences replaced). Invariants
(an exception or a failed assert is a crash): after mask_text no number of six or more
digits is left (digits of any script, Chinese and Korean numerals, separated by anything
that is neither letter nor digit, at any length: see digit_runs); a text is changed only
where it held a number that long (counting place values such as 十 or 만 as digits);
masking twice changes nothing; every_digit=True changes only numerals, one star each, and
leaves none; mask_entry leaves nothing but stars and spaces; mask_card keeps at most the
last four digits. Run: .venv/bin/python fuzz/fuzz_masking.py -max_total_time=600
fuzz/corpus/masking (docs/fuzzing.md).
"""

from __future__ import annotations

import re
import sys
import unicodedata

import atheris

with atheris.instrument_imports(include=["ivr"]):
    from ivr.core.masking import mask_card, mask_entry, mask_text

# Written apart from the masker, so that the two can disagree.
CN = {c: str(i % 10) for i, c in enumerate("零一二三四五六七八九〇壹贰叁肆伍陆柒捌玖")} | {
    "幺": "1", "两": "2", "貳": "2", "參": "3", "陸": "6"}
KO = {c: str(i) for i, c in enumerate("영일이삼사오육칠팔구")} | {"공": "0", "륙": "6"}
PLACES = "十拾百佰千仟万萬亿億십백천만억"
KO_PLACES = "십백천만억"  # a Korean run: Korean digits and places only
ZEROS = dict(zip(PLACES, [1, 1, 2, 2, 3, 3, 4, 4, 8, 8, 1, 2, 3, 4, 8], strict=True))
# Money in figures with a currency beside it, which the masker keeps at any length.
MONEY = re.compile(r"(?<!\d)(?:\d{1,3}(?:[,，]\d{3})+(?:[.．]\d{1,2})?|\d+[.．]\d{1,2})"
                   r"(?![\d.,．，])")
CURRENCY = re.compile(r"\s*(?:元|块|圆|원|美元|港元|欧元|日元)")
NATIVE = ("하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉")


def hangul(text: str, i: int) -> bool:
    c = text[i] if 0 <= i < len(text) else ""
    return "\uac00" <= c <= "\ud7a3" or "\u1100" <= c <= "\u11ff" or "\u3130" <= c <= "\u318f"


def natives(text: str) -> str:
    """Native Korean numbers (words of their own) as a digit."""
    for word in NATIVE:
        at = text.find(word)
        while at >= 0:
            if not hangul(text, at - 1) and not hangul(text, at + len(word)):
                text = text[:at] + "1" + text[at + len(word):]
            at = text.find(word, at + 1)
    return text


def alone(text: str, match: re.Match[str]) -> bool:
    """No digit before it, but for separators: else it is part of a longer number."""
    before = "".join(c for c in text[:match.start()] if c.isalnum())
    return not before or unicodedata.digit(before[-1], None) is None


def digit_stream(text: str, places: bool = False) -> str:
    """Every digit as ASCII, separators left out, "|" for a letter; a Korean digit
    syllable as a word of its own or in a run of three. ``places``: 十, 만 ... count as
    their zeros (一亿零二 has nine digits)."""
    text = natives(text)
    if not places:
        text = MONEY.sub(lambda m: "|" if alone(text, m) and (CURRENCY.match(text, m.end())
                         or re.search(r"[¥￥$€£₩]\s*$", text[:m.start()])) else m.group(), text)
    out = []
    for i, c in enumerate(text):
        if c in KO or (places and c in PLACES):
            j, k = i, i
            while j > 0 and (text[j - 1] in KO or text[j - 1] in KO_PLACES):
                j -= 1
            while k < len(text) and (text[k] in KO or text[k] in KO_PLACES):
                k += 1
            glued = hangul(text, j - 1) or hangul(text, k)
            out.append("|" if glued and k - j < 3 and c in KO else
                       "0" * ZEROS[c] if c in PLACES else KO.get(c, "0"))
        elif c in CN:
            out.append(CN[c])
        elif c.isalnum() and unicodedata.digit(c, None) is not None:
            out.append(str(unicodedata.digit(c)))
        elif c.isalnum():
            out.append("|")
    return "".join(out)


def digit_runs(text: str, places: bool = False) -> list[str]:
    return [run for run in digit_stream(text, places).split("|") if run]


def check(data: bytes) -> int:
    """Assert the invariants on one input; how many long runs it held."""
    text = data.decode("utf-8", "replace")
    masked = mask_text(text)
    long_runs = sum(len(run) >= 6 for run in digit_runs(text))
    assert all(len(run) < 6 for run in digit_runs(masked)), masked
    # Amounts and dates stay readable (money with a currency word may stay at any length).
    assert masked == text or any(len(run) >= 6 for run in digit_runs(text, places=True))
    assert mask_text(masked) == masked
    every = mask_text(text, every_digit=True)
    assert len(every) == len(text)
    assert all(a == b or (b == "*" and a.isalnum()) for a, b in zip(text, every, strict=True))
    assert not digit_runs(every)
    assert set(mask_entry(text)) <= {"*"} | {c for c in text if c.isspace()}
    card = mask_card(text)
    assert re.fullmatch(r"\**[0-9]{0,4}", card) and len(card) >= sum(map(str.isdecimal, text))
    return long_runs


def TestOneInput(data: bytes) -> None:
    check(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
