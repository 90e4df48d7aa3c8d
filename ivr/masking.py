"""Masking of secrets before anything is written, printed or handed off (SPEC rule 3)."""

from __future__ import annotations

import re

_CN_DIGITS = "零〇一二三四五六七八九幺两"
_KO_DIGITS = "공영일이삼사오육륙칠팔구"  # Sino-Korean digits, as a Korean recogniser writes them
# Six or more digits in a row (Arabic, full-width or spoken; up to three spaces or dashes
# between, as in "6222 - 0202"): a PIN, a card, an ID (whose last character may be X) or an
# account number. Shorter runs (amounts, dates) are kept.
_DIGIT_RUN = re.compile(
    rf"[0-9０-９{_CN_DIGITS}{_KO_DIGITS}](?:[\s-]{{0,3}}[0-9０-９{_CN_DIGITS}{_KO_DIGITS}]){{5,}}[Xx]?")
# Every digit; a Korean digit only as a word of its own (이 is also "this").
_ANY_DIGIT = re.compile(rf"[0-9０-９{_CN_DIGITS}]|(?<!\S)[{_KO_DIGITS}](?!\S)")


def mask_card(number: str) -> str:
    """A card number reduced to its last four digits: ``************1234``."""
    digits = re.sub(r"\D", "", number)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def mask_text(text: str, every_digit: bool = False) -> str:
    """Mask every long digit run in free text; card-length runs keep their last four.
    ``every_digit``: mask every digit (while a PIN or card number is being given)."""
    if every_digit:
        return _ANY_DIGIT.sub("*", text)

    def _mask(match: re.Match[str]) -> str:
        run = re.sub(r"[\s-]", "", match.group())
        if len(run) >= 12:
            return "*" * (len(run) - 4) + run[-4:]
        return "*" * len(run)

    return _DIGIT_RUN.sub(_mask, text)
