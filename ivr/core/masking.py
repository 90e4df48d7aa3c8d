"""Masking of secrets before anything is written, printed or handed off (SPEC rule 3).

A number is found in any form a caller writes or a recogniser hears: digits of any script
(``123``, ``１２３``, ``①②③``, ``١٢٣``), Chinese numerals digit by digit (一二三, 幺, 两,
financial 壹贰叁) or with place values (十二万三千四百五十六), Sino-Korean digits as words
(일 이 삼) or run together (일이삼사오육), native Korean numbers as words (하나 둘 셋).
Numbers joined by separators of any kind and length (spaces, punctuation, 、，．_/, full
width, invisible characters such as U+200B) are one number. What is masked:

- a number of six or more digits (a PIN, a card, an ID whose last character may be X, an
  account or phone number); card-length ones (12+) keep their last four;
- shorter ones stay readable (amounts, dates: 3月25日, 刷了五千八, 两万块);
- a number said with place values counts its digits up to the last non-zero one: a
  round amount (二十万, 一百万) is no code, 十二万三千四百五十六 is;
- an amount of money in figures (a currency sign or word beside it, and a decimal fraction
  or thousands commas: 12,345.67元, 3210.00元) is kept at any length.

While a PIN or card number is being collected the whole utterance is masked instead
(``mask_entry``): whatever the recogniser made of the digits, none of it is kept.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

MIN_SECRET = 6  # digits: a PIN has six
CARD_LENGTH = 12  # digits from which a number keeps its last four

_CN_VALUE = {c: i % 10 for i, c in enumerate("零一二三四五六七八九〇壹贰叁肆伍陆柒捌玖")}
_CN_VALUE.update({"幺": 1, "两": 2, "貳": 2, "參": 3, "陸": 6})
_CN_PLACE = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_UNIT = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}  # they scale what is before
_KO_VALUE = {c: i for i, c in enumerate("영일이삼사오육칠팔구")} | {"공": 0, "륙": 6}
_KO_PLACE = {"십": 10, "백": 100, "천": 1000}
_KO_UNIT = {"만": 10**4, "억": 10**8}
_KO_NATIVE = {w: i + 1 for i, w in enumerate(
    ["하나", "둘", "셋", "넷", "다섯", "여섯", "일곱", "여덟", "아홉"])}  # as words of their own
_KO_CHARS = "".join([*_KO_VALUE, *_KO_PLACE, *_KO_UNIT])
# A Korean digit syllable glued to Korean letters counts only in a run of three or more:
# 이 ("this", a particle), 일 ("day", 금요일), 이사, 오이 are words, 일이삼사오육 is not.
_KO_GLUED_MIN = 3
_CURRENCY = re.compile(r"\s*(?:元|块|圆|원|美元|港元|欧元|日元)")
_CURRENCY_SIGN = re.compile(r"[¥￥$€£₩]\s*$")
_MONEY = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?")


@dataclass
class _Numeral:
    """One number as written: where it is, its digits, and how it may be masked."""

    start: int
    end: int
    digits: str  # as ASCII digits
    units: list[str]  # the text of each digit as written; [] when said with place values
    arabic: bool = False  # figures (of any script), where punctuation may mean money

    @property
    def counted(self) -> int:
        """Digits that make it a possible secret (a round place-value amount has few)."""
        return len(self.digits) if self.units else len(self.digits.rstrip("0"))


def _digit(c: str) -> int | None:
    """A written digit of any script (Arabic, full width, circled, superscript ...)."""
    return unicodedata.digit(c, None) if c.isalnum() else None


def _is_hangul(text: str, i: int) -> bool:
    """A Korean letter: a Korean digit glued to one is part of a word (not to 是일)."""
    c = text[i] if 0 <= i < len(text) else ""
    return "\uac00" <= c <= "\ud7a3" or "\u1100" <= c <= "\u11ff" or "\u3130" <= c <= "\u318f"


def _is_letter(text: str, i: int) -> bool:
    """A letter of a word (a Chinese numeral is none: 七일 is one number)."""
    return 0 <= i < len(text) and text[i].isalpha() and not (
        text[i] in _CN_VALUE or text[i] in _CN_PLACE or text[i] in _CN_UNIT)


def _place_value(chars: str, values: dict[str, int], places: dict[str, int],
                 units: dict[str, int]) -> str | None:
    """十二万三千四百五十六 -> "123456", 五千八 -> "5800"; None unless well formed (two
    digits in a row, as in 一二三十, are read digit by digit instead)."""
    total = section = number = biggest = 0
    last_place, after_zero, previous_digit = 0, False, False
    for c in chars:
        if c in values:
            if previous_digit and (not after_zero or not values[c]):
                return None  # only 零 then a digit (一千零八) may follow a digit
            if not values[c] and not (total or section):
                return None  # nor does a number begin with 零 (〇四亿 is read 0, 4)
            number, previous_digit = values[c], True
            after_zero = values[c] == 0
        elif c in places:
            section += (number or 1) * places[c]
            number, last_place, previous_digit, after_zero = 0, places[c], False, False
        else:
            section, unit = section + number, units[c]
            if unit > biggest:  # 亿 scales all before it; 万 after 亿 only its section
                total, biggest = (total + (section or 1)) * unit, unit
            else:
                total += (section or 1) * unit
            number, section, previous_digit, after_zero = 0, 0, False, False
            last_place = unit
    if number and last_place >= 10 and chars[-2] not in values and "零" in values:
        number *= last_place // 10  # Chinese 五千八: the 八 is hundreds (not Korean 십이만육)
    return str(total + section + number)


def _numerals(text: str) -> list[_Numeral]:
    """Every number in the text, in order."""
    found: list[_Numeral] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _CN_VALUE or c in _CN_PLACE or c in _CN_UNIT:
            j = i
            while j < n and (text[j] in _CN_VALUE or text[j] in _CN_PLACE or text[j] in _CN_UNIT):
                j += 1
            found.append(_spoken(text, i, j, _CN_VALUE, _CN_PLACE, _CN_UNIT))
            i = j
            continue
        word = next((w for w in _KO_NATIVE if text.startswith(w, i)
                     and not _is_hangul(text, i - 1) and not _is_hangul(text, i + len(w))), None)
        if word:
            found.append(_Numeral(i, i + len(word), str(_KO_NATIVE[word]), [word]))
            i += len(word)
            continue
        if c in _KO_CHARS:
            j = i
            while j < n and text[j] in _KO_CHARS:
                j += 1
            glued = _is_hangul(text, i - 1) or _is_hangul(text, j)
            if not glued or j - i >= _KO_GLUED_MIN:
                found.append(_spoken(text, i, j, _KO_VALUE, _KO_PLACE, _KO_UNIT))
            i = j
            continue
        value = _digit(c)
        if value is not None and found and found[-1].arabic and found[-1].end == i:
            found[-1].end, found[-1].digits = i + 1, found[-1].digits + str(value)
            found[-1].units.append(c)
        elif value is not None:
            found.append(_Numeral(i, i + 1, str(value), [c], arabic=True))
        i += 1
    return [f for f in found if f.digits]


def _spoken(text: str, start: int, end: int, values: dict[str, int], places: dict[str, int],
            units: dict[str, int]) -> _Numeral:
    chars = text[start:end]
    if not any(c in values for c in chars):  # 十分, 千万, 만 (also "only"): words, or a
        return _Numeral(start, end, "", [])  # unit after figures (20万, 5만 원): amounts
    if any(c not in values for c in chars):
        value = _place_value(chars, values, places, units)
        if value is not None:
            return _Numeral(start, end, value, [])
    digits = [c for c in chars if c in values]  # 一二三十: read as the digits said
    return _Numeral(start, end, "".join(str(values[c]) for c in digits), digits)


def _chains(text: str, numerals: list[_Numeral]) -> list[list[_Numeral]]:
    """Numbers with nothing but separators (no letter, no other number) between them."""
    chains: list[list[_Numeral]] = []
    for num in numerals:
        if chains and not any(c.isalnum() for c in text[chains[-1][-1].end:num.start]):
            chains[-1].append(num)
        else:
            chains.append([num])
    return chains


def _counted(chain: list[_Numeral]) -> int:
    return sum(num.counted for num in chain)


def _trimmed(text: str, chain: list[_Numeral]) -> list[_Numeral]:
    """A one-character number glued to a word at either end (星期一 123456, 금요일) is
    left to its word when the rest is a secret by itself: the secret is masked either way."""
    def word_end(num: _Numeral, rest: list[_Numeral]) -> bool:
        gap = text[num.end:rest[0].start] if num.end <= rest[0].start else \
            text[rest[-1].end:num.start]
        apart = any(unicodedata.category(c) != "Cf" for c in gap)  # visibly apart
        # Only when the rest is masked whole: beside a card's last four it would add up.
        return (num.end - num.start == 1 and apart
                and _counted(rest) >= MIN_SECRET and len(_units(rest)) < CARD_LENGTH
                and (_is_letter(text, num.start - 1) or _is_letter(text, num.end)))

    if len(chain) > 1 and word_end(chain[0], chain[1:]):
        chain = chain[1:]
    if len(chain) > 1 and word_end(chain[-1], chain[:-1]):
        chain = chain[:-1]
    return chain


def _is_money(text: str, chain: list[_Numeral]) -> bool:
    """12,345.67元, ¥3210.00: figures with a currency beside them and a fraction or
    thousands commas (a code is never written so)."""
    if not all(num.arabic for num in chain):
        return False
    start, end = chain[0].start, chain[-1].end
    shape = chain[0].digits + "".join(
        _money_separator(text[before.end:num.start]) + num.digits
        for before, num in itertools.pairwise(chain))
    if not _MONEY.fullmatch(shape) or not ("," in shape or "." in shape):
        return False
    return bool(_CURRENCY.match(text, end) or _CURRENCY_SIGN.search(text[:start]))


def _money_separator(gap: str) -> str:
    return {",": ",", "，": ",", ".": ".", "．": "."}.get(gap, "?")


def _number_next(text: str, at: int) -> bool:
    """Whether the next letter or digit from ``at`` on begins a number."""
    first = next((i for i in range(at, len(text)) if text[i].isalnum()), None)
    return first is not None and any(n.start == 0 for n in _numerals(text[first:first + 8]))


def _units(chain: list[_Numeral]) -> list[str]:
    """Each digit as written ("" for one said with place values)."""
    return [u for num in chain for u in (num.units or [""] * len(num.digits))]


def _masked(text: str, chain: list[_Numeral]) -> tuple[int, int, str]:
    """Where the secret lies and its stars; card-length numbers keep their last four as
    written (an ID's check character X with them)."""
    start, end = chain[0].start, chain[-1].end
    units = _units(chain)
    if text[end:end + 1] in ("X", "x") and chain[-1].arabic and not _number_next(text, end + 1):
        # the check character ends an ID (a number after it: X was a letter between)
        units.append(text[end])
        end += 1
    keep = units[-4:] if len(units) >= CARD_LENGTH and all(units[-4:]) else []
    return start, end, "*" * (len(units) - len(keep)) + "".join(keep)


def mask_card(number: str) -> str:
    """A card number reduced to its last four digits: ``************1234``."""
    digits = "".join(num.digits for num in _numerals(number))
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def mask_entry(text: str) -> str:
    """An utterance said while a PIN or card number is collected: every character but the
    spaces (a recogniser may have heard the digits as any words)."""
    return re.sub(r"\S", "*", text)


def longest_number(text: str) -> int:
    """The digits of the longest number in the text (as counted for masking)."""
    return max((_counted(chain) for chain in _chains(text, _numerals(text))), default=0)


def mask_text(text: str, every_digit: bool = False) -> str:
    """Mask every secret-length number in free text; card-length ones keep their last four.
    ``every_digit``: mask every character of every number instead."""
    numerals = _numerals(text)
    if every_digit:
        out = list(text)
        for num in numerals:
            out[num.start:num.end] = "*" * (num.end - num.start)
        return "".join(out)
    pieces, at = [], 0
    for chain in _chains(text, numerals):
        if _counted(chain) < MIN_SECRET or _is_money(text, chain):
            continue
        chain = _trimmed(text, chain)
        start, end, stars = _masked(text, chain)
        pieces += [text[at:start], stars]
        at = end
    return "".join(pieces) + text[at:]
