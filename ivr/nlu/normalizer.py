"""Dialect and ASR near-homophone normalisation for Chinese utterances.

Callers speak Cantonese, Sichuanese, Northeastern, Shanghainese or Minnan forms, and the
recogniser writes near-homophones (挂失 -> 刮失). Both are repaired here, from data that
trainers maintain in ``nlu_data/<locale>/dialects.yml`` and ``lexicon.yml``, so the
classifier sees Mandarin. This module is pure Python; ``ivr.nlu.component`` wraps it as a
Rasa graph component.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pypinyin import Style, pinyin

from ivr.errors import DataFileError, shown
from ivr.yamlfile import read_mapping

MANDARIN = "mandarin"
HOMOPHONE = "homophone"
_INITIALS = {"b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x",
             "zh", "ch", "sh", "r", "z", "c", "s", "y", "w"}


@dataclass(frozen=True)
class Replacement:
    """One span of the input that was rewritten."""

    start: int
    end: int
    original: str
    replacement: str
    kind: str  # a dialect code, or "homophone"


@dataclass(frozen=True)
class Normalized:
    """The result of normalising one utterance."""

    original: str
    text: str
    dialect: str
    replacements: tuple[Replacement, ...] = ()

    def map_offset(self, position: int) -> int:
        """Map a character offset in ``original`` to the matching offset in ``text``."""
        shift = 0
        for rep in self.replacements:
            if position <= rep.start:
                break
            if position < rep.end:  # inside a rewritten span: snap to its start or end
                inside = position - rep.start
                return rep.start + shift + min(inside, len(rep.replacement))
            shift += len(rep.replacement) - (rep.end - rep.start)
        return position + shift


@lru_cache(maxsize=8192)
def _main_reading(char: str) -> str:
    """A character's usual toneless reading."""
    result = pinyin(char, style=Style.NORMAL, errors="ignore")
    return result[0][0] if result else ""


def _is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


class Normalizer:
    """Rewrites dialect phrases to Mandarin and near-homophones to banking terms."""

    def __init__(
        self,
        dialects: Mapping[str, Mapping[str, str]],
        terms: Iterable[str],
        fuzzy_pinyin: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._phrases: dict[str, tuple[str, str]] = {}
        for dialect, table in dialects.items():
            for phrase, mandarin in table.items():
                self._phrases[phrase] = (str(mandarin), dialect)
        self._dialect_order = list(dialects)
        self.terms = sorted({t for t in terms if len(t) >= 2}, key=len, reverse=True)
        self._term_set = set(self.terms)
        self._fuzzy = [(a, b) for a, b in fuzzy_pinyin]
        self._max_phrase = max((len(p) for p in self._phrases), default=0)
        self._max_term = max((len(t) for t in self.terms), default=0)
        self._terms_by_len: dict[int, list[str]] = {}
        for term in self.terms:
            self._terms_by_len.setdefault(len(term), []).append(term)
        # Read as a phrase: 活期 is huo qi, so 过期 (guo qi) is not mistaken for it.
        self._term_readings = {
            t: pinyin(t, style=Style.NORMAL, errors="ignore") for t in self.terms
        }

    @classmethod
    def from_files(cls, dialects_path: Path, lexicon_path: Path) -> Normalizer:
        """Load the trainers' data files; a broken file raises ``DataFileError``."""
        dialects = read_mapping(dialects_path).get("dialects") or {}
        lexicon = read_mapping(lexicon_path)
        if not isinstance(dialects, dict) or not all(
            isinstance(v, dict) for v in dialects.values()
        ):
            raise DataFileError(f"{shown(dialects_path)}: 'dialects' must map a dialect to phrases")
        terms = lexicon.get("terms") or []
        fuzzy = lexicon.get("fuzzy_pinyin") or []
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise DataFileError(f"{shown(lexicon_path)}: 'terms' must be a list of words")
        if not all(isinstance(p, list) and len(p) == 2 for p in fuzzy):
            raise DataFileError(f"{shown(lexicon_path)}: 'fuzzy_pinyin' must be a list of pairs")
        return cls(dialects, terms, [tuple(p) for p in fuzzy])

    def as_data(self) -> dict[str, Any]:
        """Everything needed to rebuild this normaliser (persisted inside a model)."""
        dialects: dict[str, dict[str, str]] = {d: {} for d in self._dialect_order}
        for phrase, (mandarin, dialect) in self._phrases.items():
            dialects[dialect][phrase] = mandarin
        return {"dialects": dialects, "terms": self.terms, "fuzzy_pinyin": self._fuzzy}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Normalizer:
        return cls(data["dialects"], data["terms"], [tuple(p) for p in data["fuzzy_pinyin"]])

    def normalize(self, text: str) -> Normalized:
        """Normalise one utterance; offsets of the result map back via ``map_offset``."""
        out: list[str] = []
        reps: list[Replacement] = []
        scores: dict[str, int] = {}
        i = 0
        while i < len(text):
            term = self._exact_term_at(text, i)
            if term:  # a correctly heard banking term is never rewritten
                out.append(term)
                i += len(term)
                continue
            match = self._match_dialect(text, i) or self._match_homophone(text, i)
            if match:
                length, new, kind = match
                reps.append(Replacement(i, i + length, text[i : i + length], new, kind))
                if kind != HOMOPHONE:
                    scores[kind] = scores.get(kind, 0) + length
                out.append(new)
                i += length
            else:
                out.append(text[i])
                i += 1
        dialect = max(
            scores, key=lambda d: (scores[d], -self._dialect_order.index(d)), default=MANDARIN
        )
        return Normalized(text, "".join(out), dialect, tuple(reps))

    def _exact_term_at(self, text: str, i: int) -> str | None:
        for length in range(min(self._max_term, len(text) - i), 1, -1):
            if text[i : i + length] in self._term_set:
                return text[i : i + length]
        return None

    # Matchers return (characters consumed, replacement, kind) or None.
    def _match_dialect(self, text: str, i: int) -> tuple[int, str, str] | None:
        for length in range(min(self._max_phrase, len(text) - i), 0, -1):
            hit = self._phrases.get(text[i : i + length])
            if hit:
                return length, hit[0], hit[1]
        return None

    def _match_homophone(self, text: str, i: int) -> tuple[int, str, str] | None:
        for length in range(min(self._max_term, len(text) - i), 1, -1):
            window = text[i : i + length]
            if not all(_is_han(c) for c in window):
                continue
            for term in self._terms_by_len.get(length, ()):
                if self._sounds_like(window, term):
                    return length, term, HOMOPHONE
        return None

    def _sounds_like(self, heard: str, term: str) -> bool:
        """Whether ``heard`` is a near-homophone of ``term``.

        Recognisers get a word partly right, so a shared character is required: without it,
        everyday words (可不 / 客服) would turn into banking terms. Each side is read in its
        usual reading, the term as a phrase.
        """
        if not any(a == b for a, b in zip(heard, term, strict=True)):
            return False
        readings = self._term_readings[term]
        if len(readings) != len(term):
            return False
        return all(
            a == b or self._close(_main_reading(a), reading[0])
            for a, b, reading in zip(heard, term, readings, strict=True)
        )

    def _close(self, heard: str, meant: str) -> bool:
        return heard == meant or self._canonical(heard) == self._canonical(meant)

    def _canonical(self, syllable: str) -> str:
        """Collapse each fuzzy pair to one spelling: zh->z, n->l, ang->an, ..."""
        for a, b in self._fuzzy:
            long, short = sorted((a, b), key=lambda x: (-len(x), x))
            if a in _INITIALS and b in _INITIALS:
                if syllable.startswith(long):
                    syllable = short + syllable[len(long) :]
            elif syllable.endswith(long):
                syllable = syllable[: -len(long)] + short
        return syllable
