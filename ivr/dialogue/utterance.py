"""Hesitations, fillers and line checks: what a caller says while saying nothing.

嗯嗯嗯, 那个……, 呃，等一下, 喂喂, 음…, 저기요: a classifier trained on requests maps these
onto some intent with high confidence (嗯 looks like a yes, 那个 like the start of a
request), so they are taken out before it sees the utterance. An utterance made only of
them is *nothing said*: a no-match toward SPEC rule 1's two strikes, never an intent; a
request wrapped in them (嗯，我想查一下余额) is classified without them.

Before that, traditional characters become simplified ones (我要查詢餘額 is 我要查询余额):
the models are trained on simplified text, and OpenCC knows the conversion far better
than a hand-made table. ``UtterancePrep`` does both, per locale.

The words are data, per locale, in ``locales/<locale>.yml`` under ``fillers:``:
``interjections`` are sounds that are never part of a word at the start of a phrase
(嗯, 呃, 음), ``phrases`` are filler words and line checks that count only when a whole
phrase is made of them (那个 is a filler alone, a determiner in 那个卡丢了).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.errors import DataFileError
from ivr.yamlfile import read_mapping

# Where one phrase ends and the next begins: punctuation of any script, ellipses, spaces.
_BOUNDARY = r"[\s\u3000,.!?;:…~、，。！？；：·\-—_()（）\[\]「」『』\"'“”‘’]+"
_PHRASES = re.compile(f"({_BOUNDARY})")
_WORD = re.compile(r"\w")
# A Chinese recogniser separates words with spaces, which are not pauses: 那个 in
# "那个 卡 丢 了" is a determiner. Korean spaces are word boundaries and stay.
_HAN_SPACE = re.compile(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])")


@dataclass(frozen=True)
class Hesitations:
    """A locale's fillers; ``strip`` takes them out of an utterance."""

    interjections: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()  # longest first, so 就是说 wins over 就是

    @classmethod
    def from_locale_file(cls, path: Path) -> Hesitations:
        """The ``fillers:`` of ``locales/<locale>.yml`` (none: nothing is stripped)."""
        return cls.from_locale(read_mapping(path) if path.is_file() else {}, path)

    @classmethod
    def from_locale(cls, data: dict[str, Any], path: Path) -> Hesitations:
        fillers = data.get("fillers") or {}
        if not isinstance(fillers, dict):
            raise DataFileError(f"{path.name}: fillers: must map interjections and phrases "
                                "to lists of words")
        words: dict[str, list[str]] = {}
        for key in ("interjections", "phrases"):
            value = fillers.get(key) or []
            if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
                raise DataFileError(f"{path.name}: fillers.{key} must be a list of words")
            words[key] = value
        longest_first = lambda ws: tuple(sorted(set(ws), key=len, reverse=True))  # noqa: E731
        return cls(longest_first(words["interjections"]),
                   longest_first(words["interjections"] + words["phrases"]))

    def strip(self, text: str) -> str:
        """The utterance without its fillers: "" when nothing else was said, the text
        unchanged when it held none."""
        parts = _PHRASES.split(_HAN_SPACE.sub("", text))
        kept: list[str] = []
        changed = False
        for i in range(0, len(parts), 2):  # phrase, separator, phrase, ...
            phrase = self._without_leading_interjections(parts[i])
            separator = parts[i + 1] if i + 1 < len(parts) else ""
            if phrase and self._only_fillers(phrase):
                changed = True
                continue
            changed |= phrase != parts[i]
            kept += [phrase, separator]
        if not changed:
            return text
        rest = "".join(kept).strip()
        return rest if _WORD.search(rest) else ""

    def _only_fillers(self, phrase: str) -> bool:
        """The phrase is filler words end to end (喂喂, 那个那个, 就是那个什么)."""
        rest = phrase
        while rest:
            word = next((w for w in self.phrases if rest.startswith(w)), None)
            if word is None:
                return False
            rest = rest[len(word):]
        return True

    def _without_leading_interjections(self, phrase: str) -> str:
        """嗯我想查余额 -> 我想查余额: a sound a phrase starts with is never its content."""
        changed = True
        while changed:
            changed = False
            for sound in self.interjections:
                if phrase.startswith(sound) and len(phrase) > len(sound):
                    phrase, changed = phrase[len(sound):], True
        return phrase


@dataclass(frozen=True)
class UtterancePrep:
    """What the classifier gets of an utterance: its script converted (``script:`` in the
    locale file, an OpenCC configuration such as ``t2s``), then its fillers taken out."""

    hesitations: Hesitations = field(default_factory=Hesitations)
    convert: Callable[[str], str] | None = None

    @classmethod
    def for_locale(cls, path: Path) -> UtterancePrep:
        data = read_mapping(path) if path.is_file() else {}
        script = data.get("script")
        convert = None
        if script:
            import opencc

            try:
                convert = opencc.OpenCC(str(script)).convert
            except Exception as e:  # an unknown configuration name
                raise DataFileError(f"{path.name}: script: {script!r} is not an OpenCC "
                                    f"conversion such as t2s ({e})") from None
        return cls(Hesitations.from_locale(data, path), convert)

    def __call__(self, text: str) -> str:
        """The utterance as the classifier should read it ("": nothing said)."""
        return self.hesitations.strip(self.convert(text) if self.convert else text)
