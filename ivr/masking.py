"""Masking of secrets before anything is written, printed or handed off (SPEC rule 3)."""

from __future__ import annotations

import re

_CN_DIGITS = "零〇一二三四五六七八九幺两"
# Six or more digits in a row (Arabic or spoken Chinese, spaces or dashes allowed between):
# a PIN, a card, an ID (whose last character may be X) or an account number. Shorter runs
# (amounts, dates) are kept.
_DIGIT_RUN = re.compile(rf"[0-9{_CN_DIGITS}](?:[\s-]?[0-9{_CN_DIGITS}]){{5,}}[Xx]?")


def mask_card(number: str) -> str:
    """A card number reduced to its last four digits: ``************1234``."""
    digits = re.sub(r"\D", "", number)
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def mask_text(text: str) -> str:
    """Mask every long digit run in free text; card-length runs keep their last four."""

    def _mask(match: re.Match[str]) -> str:
        run = re.sub(r"[\s-]", "", match.group())
        if len(run) >= 12:
            return "*" * (len(run) - 4) + run[-4:]
        return "*" * len(run)

    return _DIGIT_RUN.sub(_mask, text)
