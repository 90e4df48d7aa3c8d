"""What the classifier gets of an utterance: the caller's words, prepared per locale.

A classifier trained on clean requests has no sense of order and no notion of "nothing":
it maps 嗯嗯嗯 onto a yes and 不是挂失，是新卡要激活 onto 挂失, each with high confidence.
So before it sees an utterance, ``UtterancePrep`` does four things, each driven by data in
``locales/<locale>.yml`` (none of it inside a trained model: an edit takes effect at the
next start, and no model is retrained):

1. ``script``: traditional characters become simplified (我要查詢餘額 → 我要查询余额), by
   OpenCC, which knows the conversion far better than a hand-made table.
2. ``loanwords``: English banking words said inside Mandarin become the locale's words
   (我想查一下 balance → 我想查一下余额); matched as whole words, any case.
3. ``fillers``: hesitations, line checks and function words said alone are taken out;
   an utterance made only of them is *nothing said*: a no-match toward SPEC rule 1's two
   strikes, never an intent. ``interjections`` are sounds that are never part of a word at
   the start of a phrase (嗯, 呃); ``phrases`` count only when a whole phrase is made of
   them (那个 is a filler alone, a determiner in 那个卡丢了); ``patterns`` are whole
   phrases such as line checks (喂，听得到吗) written as regular expressions; ``particles``
   are characters that carry no request (的, 了, 呢), so a phrase of only them (a noise
   transcript: 哦 那 么 就) is nothing said.
4. ``corrections``: what the caller does not want is dropped when they go on to say what
   they do. A clause that opens with a negation (不是挂失, 我不查余额了, 唔系) followed by a
   clause with a request word and no negation (我要开卡) leaves only the request; without
   punctuation, a request cue after the negation (不是查余额我要查账单) splits it. Korean
   says it with an infix (잔액 말고 카드 대금이요).
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
_CLAUSES = re.compile(r"([,.!?;:…~、，。！？；：]+\s*)")  # spaces are not clause breaks
_WORD = re.compile(r"\w")
# A Chinese recogniser separates words with spaces, which are not pauses: 那个 in
# "那个 卡 丢 了" is a determiner. Korean spaces are word boundaries and stay.
_HAN_SPACE = re.compile(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])")


def _words(path: Path, data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
        raise DataFileError(f"{path.name}: {key} must be a list of words")
    return value


def _section(path: Path, data: dict[str, Any], key: str) -> dict[str, Any]:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise DataFileError(f"{path.name}: {key}: must be a mapping")
    return section


def _longest_first(words: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(words), key=len, reverse=True))


@dataclass(frozen=True)
class Hesitations:
    """A locale's fillers; ``strip`` takes them out of an utterance."""

    interjections: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()  # longest first, so 就是说 wins over 就是
    patterns: tuple[re.Pattern[str], ...] = ()
    particles: frozenset[str] = frozenset()

    @classmethod
    def from_locale_file(cls, path: Path) -> Hesitations:
        """The ``fillers:`` of ``locales/<locale>.yml`` (none: nothing is stripped)."""
        return cls.from_locale(read_mapping(path) if path.is_file() else {}, path)

    @classmethod
    def from_locale(cls, data: dict[str, Any], path: Path) -> Hesitations:
        fillers = _section(path, data, "fillers")
        words = {key: _words(path, {f"fillers.{key}": fillers.get(key)}, f"fillers.{key}")
                 for key in ("interjections", "phrases", "patterns", "particles")}
        try:
            patterns = tuple(re.compile(p) for p in words["patterns"])
        except re.error as e:
            raise DataFileError(f"{path.name}: fillers.patterns: {e}") from None
        return cls(_longest_first(words["interjections"]),
                   _longest_first(words["interjections"] + words["phrases"]), patterns,
                   frozenset("".join(words["particles"])))

    def strip(self, text: str) -> str:
        """The utterance without its fillers: "" when nothing else was said, the text
        unchanged when it held none."""
        parts = _PHRASES.split(_HAN_SPACE.sub("", text))
        kept: list[str] = []
        changed = False
        for i in range(0, len(parts), 2):  # phrase, separator, phrase, ...
            phrase = parts[i]
            separator = parts[i + 1] if i + 1 < len(parts) else ""
            if phrase and not self._is_filler(phrase):
                phrase = self._without_leading_interjections(phrase)
            if phrase and self._is_filler(phrase):
                changed = True
                continue
            changed |= phrase != parts[i]
            kept += [phrase, separator]
        if not changed:
            return text
        rest = "".join(kept).strip()
        if not _WORD.search(rest) or all(c in self.particles or not _WORD.match(c)
                                         for c in rest):
            return ""  # nothing but particles and punctuation: a noise transcript
        return rest

    def _is_filler(self, phrase: str) -> bool:
        return (self._only_fillers(phrase) or any(p.fullmatch(phrase) for p in self.patterns)
                or all(c in self.particles for c in phrase))

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
class Loanwords:
    """English banking words inside the locale's speech, as the locale says them."""

    pattern: re.Pattern[str] | None = None
    words: dict[str, str] = field(default_factory=dict)  # lower-case English -> locale

    @classmethod
    def from_locale(cls, data: dict[str, Any], path: Path) -> Loanwords:
        words = _section(path, data, "loanwords")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in words.items()):
            raise DataFileError(f"{path.name}: loanwords: must map English words to words")
        if not words:
            return cls()
        # Whole words, any spacing inside a phrase ("credit  card"), longest first.
        alternatives = "|".join(r"\s+".join(map(re.escape, w.split()))
                                for w in _longest_first(list(words)))
        return cls(re.compile(rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])", re.IGNORECASE),
                   {" ".join(k.lower().split()): v for k, v in words.items()})

    def replace(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda m: self.words[" ".join(m.group().lower().split())],
                                text)


@dataclass(frozen=True)
class Corrections:
    """``不是A，是B``: what the caller does not want, dropped when they say what they do."""

    negations: tuple[str, ...] = ()  # a clause opening with one of these negates
    openers: tuple[str, ...] = ()  # words a clause may start with before its negation (我)
    requests: tuple[str, ...] = ()  # a clause with one of these asks for something
    cues: tuple[str, ...] = ()  # where a request starts inside one clause (我要)
    restates: tuple[str, ...] = ()  # a clause opening with one says what was meant (是)
    infixes: tuple[str, ...] = ()  # "X 말고 Y": Y

    @classmethod
    def from_locale(cls, data: dict[str, Any], path: Path) -> Corrections:
        section = _section(path, data, "corrections")
        words = {key: _longest_first(_words(path, {f"corrections.{key}": section.get(key)},
                                            f"corrections.{key}"))
                 for key in ("negations", "openers", "requests", "cues", "restates",
                             "infixes")}
        return cls(**words)

    def apply(self, text: str) -> str:
        for infix in self.infixes:  # a word of its own, with any ending (아니고요)
            found = list(re.finditer(rf"(?<=\S)\s+{re.escape(infix)}\S*\s+(?=\S)", text))
            if found:
                return text[found[-1].end():].strip()
        if not self.negations or not self._negated(text):
            return text
        parts = _CLAUSES.split(text)
        clauses = parts[0::2]
        for j in range(len(clauses) - 1, 0, -1):
            if self._asks(clauses[j]):
                return "".join(parts[2 * j:]).strip()
        for cue in self.cues:  # one clause: 不是查余额我要查账单
            at = text.find(cue, 2)
            if at > 0 and len(text) - at - len(cue) >= 2:
                return text[at:]
        return text

    def _negated(self, clause: str) -> bool:
        clause = clause.strip()
        for opener in self.openers:
            if clause.startswith(opener) and not clause.startswith(self.negations):
                clause = clause[len(opener):]
                break
        return clause.startswith(self.negations)

    def _asks(self, clause: str) -> bool:
        clause = clause.strip()
        return not any(n in clause for n in self.negations) and (
            clause.startswith(self.restates) or any(r in clause for r in self.requests))


@dataclass(frozen=True)
class Quantities:
    """Amounts of money and dates inside a request (刷了五千八, 15号进了八千五): what the
    caller asks is the same whatever the figure, and a classifier that learnt from a few
    figures reads new ones as noise (我想贷五十万 read as a bill). So each becomes one plain
    word, in the order the locale lists them."""

    rules: tuple[tuple[re.Pattern[str], str], ...] = ()

    @classmethod
    def from_locale(cls, data: dict[str, Any], path: Path) -> Quantities:
        items = data.get("quantities") or []
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("pattern"), str)
                and isinstance(i.get("as"), str) for i in items):
            raise DataFileError(f"{path.name}: quantities: must be a list of "
                                "{pattern: REGEX, as: WORD}")
        try:
            return cls(tuple((re.compile(i["pattern"]), i["as"]) for i in items))
        except re.error as e:
            raise DataFileError(f"{path.name}: quantities: {e}") from None

    def replace(self, text: str) -> str:
        for pattern, word in self.rules:
            text = pattern.sub(word, text)
        return text


def _keeping(convert: Callable[[str], str], keep: frozenset[str]) -> Callable[[str], str]:
    """``convert``, leaving the characters in ``keep`` as they are: OpenCC's t2s also
    rewrites dialect characters that simplified Cantonese writing keeps (嗰 becomes 𠮶),
    which the dialect data and training examples use as they are."""
    def run(text: str) -> str:
        converted = convert(text)
        if not keep or len(converted) != len(text):
            return converted
        return "".join(o if o in keep else c for o, c in zip(text, converted, strict=True))

    return run


@dataclass(frozen=True)
class UtterancePrep:
    """What the classifier gets of an utterance: script converted, loanwords translated,
    amounts and dates made plain, fillers taken out ("": nothing said), corrections
    resolved."""

    hesitations: Hesitations = field(default_factory=Hesitations)
    convert: Callable[[str], str] | None = None
    loanwords: Loanwords = field(default_factory=Loanwords)
    corrections: Corrections = field(default_factory=Corrections)
    quantities: Quantities = field(default_factory=Quantities)

    @classmethod
    def for_locale(cls, path: Path) -> UtterancePrep:
        data = read_mapping(path) if path.is_file() else {}
        script = _section(path, data, "script")
        convert = None
        if script:
            import opencc

            try:
                opencc_convert = opencc.OpenCC(str(script.get("convert"))).convert
            except Exception as e:  # an unknown configuration name
                raise DataFileError(f"{path.name}: script.convert: {script.get('convert')!r} "
                                    f"is not an OpenCC conversion such as t2s ({e})") from None
            convert = _keeping(opencc_convert, frozenset(str(script.get("keep") or "")))
        return cls(Hesitations.from_locale(data, path), convert,
                   Loanwords.from_locale(data, path), Corrections.from_locale(data, path),
                   Quantities.from_locale(data, path))

    def __call__(self, text: str) -> str:
        """The utterance as the classifier should read it ("": nothing said)."""
        text = self.convert(text) if self.convert else text
        said = self.hesitations.strip(self.quantities.replace(self.loanwords.replace(text)))
        return self.corrections.apply(said) if said else ""
