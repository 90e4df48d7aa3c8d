"""A trainer's labels from the review queue, turned into data the next ``ivr train`` uses.

- an intent (confirmed or corrected) for utterances: Rasa examples appended to
  ``nlu_data/<locale>/labelled.yml``, each with who/when/which call in its metadata;
- an ASR error: what the caller really said (a label only; an example too with an intent);
- a dialect synonym (``dialects.yml``) or an ASR near-homophone term (``lexicon.yml``).

Files are appended to as text (ivr/trainer/label_files.py), so every comment and line people
wrote stays as it was. Every label is also recorded in the call log's ``labels`` table, which
takes the labelled utterances out of the review queue. docs/review.md has the rules. All
synchronous.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ivr.calllog.store import CallStore
from ivr.core.masking import mask_text
from ivr.errors import DataFileError, IvrError, Remedy, shown
from ivr.nlu.normalizer import HOMOPHONE, MANDARIN, Normalizer
from ivr.project import Project
from ivr.trainer.label_files import (
    add_dialect_phrase,
    add_lexicon_term,
    append_examples,
    left_out_terms,
    one_at_a_time,
    utc_now,
)
from ivr.trainer.review import Item, canonical
from ivr.yamlfile import read_mapping

ASR = "asr"  # the "dialect" of a near-homophone: it goes to lexicon.yml (see add_synonym)
# How to go on, said by each front end (ivr/errors.py): a flag in the CLI, a control in
# the console.
FORCE = Remedy("synonym_force", " (add it anyway with --force)")
SAID = Remedy("said", " (--said)")
LOCALE = Remedy("locale", ": use --locale")


class LabelError(IvrError):
    """A label that cannot be applied (unknown intent, nothing to add)."""


class SynonymError(IvrError):
    """A synonym that cannot be added (exists, never takes effect, or rewrites Mandarin)."""


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    file: str


@dataclass
class Outcome:
    """What became of one utterance: ``added`` (a new example), ``exists`` (already an
    example of that intent), ``conflict`` (an example of another intent: not added, not
    labelled), ``masked`` (has masked digits: labelled, never an example)."""

    key: str
    text: str
    status: str
    detail: str = ""


@dataclass
class LabelResult:
    intent: str | None
    file: Path | None
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "file": str(self.file) if self.file else None,
                "outcomes": [o.__dict__ for o in self.outcomes]}


@dataclass(frozen=True)
class SynonymResult:
    file: Path
    dialect: str
    key: str
    mandarin: str


# --- the training data as it is ----------------------------------------------------------
def normalizer_of(project: Project) -> Normalizer | None:
    """The locale's dialect normaliser (zh), built from its current files; None without."""
    files = {p.name: p for p in project.normalizer_files()}
    if len(files) < 2:
        return None
    return Normalizer.from_files(files["dialects.yml"], files["lexicon.yml"])


def training_examples(project: Project) -> list[Example]:
    """Every intent example of the locale's NLU files, as Rasa reads them."""
    from rasa.shared.nlu.training_data.loading import load_data

    examples = []
    for path in project.nlu_files():
        try:
            data = load_data(str(path))
        except Exception as e:  # Rasa raises many kinds for a broken file
            raise DataFileError(f"{shown(path)}: not valid Rasa NLU data ({e})") from None
        examples += [Example(m.get("text"), m.get("intent"), path.name)
                     for m in data.intent_examples]
    return examples


class _Index:
    """The examples by text and by normalized text, to find what a new one contradicts."""

    def __init__(self, project: Project) -> None:
        self.normalizer = normalizer_of(project)
        self.examples: dict[str, list[Example]] = {}
        for ex in training_examples(project):
            self.add(ex)

    def key(self, text: str) -> str:
        return canonical(self.normalizer.normalize(text).text if self.normalizer else text)

    def add(self, ex: Example) -> None:
        for k in {canonical(ex.text), self.key(ex.text)}:
            self.examples.setdefault(k, []).append(ex)

    def same(self, text: str) -> list[Example]:
        found = [ex for k in {canonical(text), self.key(text)} for ex in self.examples.get(k, [])]
        return list(dict.fromkeys(found))

    @property
    def intents(self) -> set[str]:
        return {ex.intent for found in self.examples.values() for ex in found}

    def form(self, text: str) -> str | None:
        """The held-out form of an utterance (evaluation groups labelled ones by it)."""
        if not self.normalizer:
            return None
        normalized = self.normalizer.normalize(text)
        if normalized.dialect == MANDARIN and any(r.kind == HOMOPHONE
                                                  for r in normalized.replacements):
            return ASR
        return normalized.dialect


# --- labels --------------------------------------------------------------------------------
@one_at_a_time
def label_intent(project: Project, store: CallStore, items: list[Item], intent: str, by: str,
                 cluster: str | None = None) -> LabelResult:
    """Say what the callers of ``items`` meant: each becomes an example of ``intent`` unless
    it contradicts one (same text, or same normalized text, of another intent) or has
    masked digits; all but the contradicting ones are labelled and leave the queue."""
    _same_locale(project, items)
    index = _Index(project)
    _check_intent(index, intent)
    result = LabelResult(intent, project.labelled)
    examples = []
    for item in items:
        outcome, example = _consider(index, item.key, item.text, intent)
        result.outcomes.append(outcome)
        if example:
            examples.append(_example(example, by, item.call_id, item.n, index.form(item.text)))
    append_examples(project.labelled, intent, examples)
    for item, outcome in zip(items, result.outcomes, strict=True):
        if outcome.status != "conflict":
            store.add_label(item.call_id, by, intent=intent, turn=item.n, text=item.text,
                            kind="confirm" if intent == item.intent else "intent",
                            cluster=cluster)
    return result


@one_at_a_time
def mark_asr_error(project: Project, store: CallStore, item: Item, said: str, by: str,
                   intent: str | None = None) -> LabelResult:
    """Record that the caller of ``item`` really said ``said`` (masked like everything
    logged), for ASR error figures; with ``intent``, ``said`` also becomes an example of it
    (unless it contradicts one or has masked digits)."""
    said = mask_text(" ".join(said.split()))
    if not said:
        raise LabelError("say what the caller said", SAID)
    _same_locale(project, [item])
    result = LabelResult(intent, None)
    if intent:
        index = _Index(project)
        _check_intent(index, intent)
        outcome, example = _consider(index, item.key, said, intent)
        result.outcomes.append(outcome)
        if example:
            result.file = project.labelled
            append_examples(project.labelled, intent, [
                _example(example, by, item.call_id, item.n, index.form(said),
                         heard=item.text)])
    store.add_label(item.call_id, by, intent=intent, turn=item.n, text=said, kind="asr_error",
                    note=f"heard: {item.text}")
    return result


def _same_locale(project: Project, items: Iterable[Item]) -> None:
    other = {i.locale for i in items} - {project.locale}
    if other:
        raise LabelError(f"utterances of locale {', '.join(sorted(other))} cannot be labelled "
                         f"into {project.locale}'s data", LOCALE)


def _check_intent(index: _Index, intent: str) -> None:
    if intent not in index.intents:
        raise LabelError(f"intent {intent!r} has no training examples in this locale: one of "
                         f"{', '.join(sorted(index.intents))}")


def _consider(index: _Index, key: str, text: str, intent: str) -> tuple[Outcome, str | None]:
    """Whether ``text`` may become an example of ``intent`` (and the index learns it)."""
    text = text.strip()
    if "*" in text:
        return Outcome(key, text, "masked", "has masked digits: never an example"), None
    same = index.same(text)
    against = [ex for ex in same if ex.intent != intent]
    if against:
        ex = against[0]
        return Outcome(key, text, "conflict", f"already an example of {ex.intent} in "
                       f"{ex.file} (“{ex.text}”)"), None
    if same:
        return Outcome(key, text, "exists", f"already an example in {same[0].file}"), None
    index.add(Example(text, intent, "labelled.yml"))  # a second one in this batch "exists"
    return Outcome(key, text, "added"), text


def _example(text: str, by: str, call_id: str, n: int, form: str | None,
             heard: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labelled_by": by, "labelled_at": utc_now(), "call": call_id,
                                "turn": n}
    if form:
        metadata["form"] = form
    if heard:
        metadata["heard"] = heard
    return {"text": text, "metadata": metadata}


# --- dialect synonyms and near-homophones ------------------------------------------------------
def dialect_codes(project: Project) -> list[str]:
    """The dialects of ``dialects.yml``, and ``asr`` for a near-homophone."""
    return [*(read_mapping(project.nlu_dir / "dialects.yml").get("dialects") or {}), ASR]


@one_at_a_time
def add_synonym(project: Project, store: CallStore, key: str, mandarin: str, dialect: str,
                by: str, items: Iterable[Item] = (), cluster: str | None = None,
                force: bool = False) -> SynonymResult:
    """Teach the normaliser ``key`` → ``mandarin``: a dialect phrase under ``dialect`` in
    ``dialects.yml``; with ``asr``, ``mandarin`` becomes a lexicon term whose near-homophone
    ``key`` then is (it must be one by the lexicon's rule). Refused when the key exists,
    would never fire, or would rewrite plain-Mandarin training examples (``force`` adds it
    anyway). ``items`` (of ``cluster``) are labelled with it and leave the queue. Takes
    effect at the next ``ivr train``."""
    key, mandarin = key.strip(), mandarin.strip()
    old = normalizer_of(project)
    if old is None:
        raise SynonymError(f"locale {project.locale} has no dialect data (nlu_data/"
                           f"{project.locale}/dialects.yml and lexicon.yml)")
    if not key or not mandarin or key == mandarin or "\n" in key + mandarin:
        raise SynonymError("give a phrase and a different Mandarin text, each on one line")
    codes = dialect_codes(project)
    if dialect not in codes:
        raise SynonymError(f"dialect {dialect!r}: one of {', '.join(codes)}")
    dialects = read_mapping(project.nlu_dir / "dialects.yml")["dialects"]
    lexicon = read_mapping(project.nlu_dir / "lexicon.yml")
    terms, fuzzy = list(lexicon.get("terms") or []), lexicon.get("fuzzy_pinyin") or []
    for code, table in dialects.items():
        if key in table:
            raise SynonymError(f"{key!r} is already in dialects.yml under {code} "
                               f"(→ {table[key]})")
    inside = [t for t in terms if key in t and key not in mandarin]
    if key in terms or inside:
        raise SynonymError(f"{key!r} is (inside) the banking term {(inside or [key])[0]!r} "
                           "of lexicon.yml: rewriting it would break the term")
    if dialect == ASR:
        if old.normalize(key).text == mandarin:
            raise SynonymError(f"{key!r} is already repaired to {mandarin!r}")
        if mandarin in terms:
            raise SynonymError(f"{key!r} does not sound like the term {mandarin!r} by the "
                               "lexicon's rule: label the utterance instead")
        if mandarin in left_out_terms(project.nlu_dir / "lexicon.yml") and not force:
            raise SynonymError(f"lexicon.yml leaves {mandarin!r} out on purpose (its header "
                               "says why)", FORCE)
        new = Normalizer(dialects, [*terms, mandarin], [tuple(p) for p in fuzzy])
    else:
        new = Normalizer({**dialects, dialect: {**dialects[dialect], key: mandarin}}, terms,
                         [tuple(p) for p in fuzzy])
    if new.normalize(key).text != mandarin:
        hint = ("not a near-homophone of it (same pinyin up to the fuzzy pairs, sharing a "
                "character)" if dialect == ASR else "a longer phrase or a term overlaps it")
        raise SynonymError(f"{key!r} would not become {mandarin!r}: {hint}")
    if not force:
        _check_mandarin_kept(project, old, new, key if dialect == ASR else None)
    if dialect == ASR:
        path = add_lexicon_term(project.nlu_dir / "lexicon.yml", mandarin, by)
    else:
        path = add_dialect_phrase(project.nlu_dir / "dialects.yml", dialect, key, mandarin, by)
    note = f"{dialect}: {key} → {mandarin}"
    items = list(items)
    for item in items:
        store.add_label(item.call_id, by, turn=item.n, text=item.text, kind="synonym",
                        cluster=cluster, note=note)
    if not items:
        store.add_label("", by, text=key, kind="synonym", note=note)
    return SynonymResult(path, dialect, key, mandarin)


def _check_mandarin_kept(project: Project, old: Normalizer, new: Normalizer,
                         misheard: str | None) -> None:
    """The file's rule: no key may fire inside ordinary Mandarin. Its training examples
    that are plain Mandarin today must read the same after the change (for a near-homophone,
    those containing the misheard form itself are that ASR error)."""
    hits = []
    for ex in training_examples(project):
        before = old.normalize(ex.text)
        if before.dialect != MANDARIN or (misheard and misheard in ex.text):
            continue
        after = new.normalize(ex.text).text
        if after != before.text:
            hits.append(f"“{ex.text}” → “{after}” ({ex.file}, {ex.intent})")
    if hits:
        raise SynonymError(f"it would rewrite {len(hits)} Mandarin training example(s): "
                           f"{'; '.join(hits[:3])}", FORCE)
