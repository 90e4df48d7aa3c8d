"""`ivr data validate`: the domain, training data, rules, locale files and knowledge base
checked against each other, and the live models against the data they were trained on.

Every problem names a file and a line (``path:line: message``). Lines come from the YAML
node marks (``yaml.compose``), which Rasa's own validator does not give; it also imports
TensorFlow (seconds) and reports through warnings, so its checks are redone here, and
only Rasa's domain loader is reused (its structural checks of responses and slots).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.project import NORMALIZER_FILES, Project

# What each locale-file block may hold (ivr/dialogue/utterance.py, confidence.py): an
# unknown key is a typo the loaders would silently ignore.
BLOCK_KEYS = {
    "fillers": {"interjections", "phrases", "patterns", "particles"},
    "corrections": {"negations", "openers", "requests", "cues", "restates", "infixes"},
    "confidence": {"confirm", "accept", "control_accept", "costly_accept", "costly",
                   "asr_trust", "ask", "again", "labels"},
}
_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\(([^)]*)\)|\{([^}]*)\})")


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # what was checked, for the summary

    def add(self, path: str, node: yaml.Node | int | None, message: str) -> None:
        self.problems.append(Problem(path, _line(node), message))


def _line(node: yaml.Node | int | None) -> int:
    if isinstance(node, int):
        return node
    return node.start_mark.line + 1 if node is not None else 1


def _items(node: yaml.Node | None) -> Iterator[tuple[yaml.ScalarNode, yaml.Node]]:
    """A mapping node's (key node, value node) pairs; nothing for anything else."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                yield key, value


def _get(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    for k, v in _items(node):
        if k.value == key:
            return k, v
    return None, None


def _seq(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


class _Files:
    """Composed YAML files, each read once; a file that is not YAML is one problem."""

    def __init__(self, project: Project, report: Report) -> None:
        self.root = project.root
        self.report = report
        self._nodes: dict[Path, yaml.Node | None] = {}

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def node(self, path: Path) -> yaml.Node | None:
        if path not in self._nodes:
            self._nodes[path] = None
            try:
                self._nodes[path] = yaml.compose(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                self.report.add(self.name(path), 1, "file not found")
            except UnicodeDecodeError:
                self.report.add(self.name(path), 1, "not UTF-8 text")
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                self.report.add(self.name(path), mark.line + 1 if mark else 1,
                                f"not valid YAML ({getattr(e, 'problem', None) or e})")
        return self._nodes[path]


@dataclass
class _Domain:
    intents: dict[str, yaml.Node] = field(default_factory=dict)
    entities: set[str] = field(default_factory=set)
    slots: dict[str, yaml.Node] = field(default_factory=dict)
    responses: dict[str, yaml.Node] = field(default_factory=dict)
    actions: set[str] = field(default_factory=set)
    forms: set[str] = field(default_factory=set)


def validate(project: Project) -> Report:
    """Every problem found, sorted by file and line."""
    report = Report()
    files = _Files(project, report)
    domain = _check_domain(project, files)
    locales = project.locales()
    used: set[str] = set()  # intents with examples (any locale) or in a rule
    for locale in locales:
        used |= _check_nlu(project.with_locale(locale), files, domain)
    used |= _check_rules(project, files, domain)
    name = files.name(project.domain)
    from rasa.shared.core.constants import DEFAULT_INTENTS

    for intent, node in domain.intents.items():
        if intent not in used and intent not in DEFAULT_INTENTS:
            report.add(name, node, f"intent {intent!r} is in the domain but in no training "
                       "data and no rule")
    for path in sorted((project.root / "locales").glob("*.yml")):
        _check_locale_file(path, files, domain)
    for locale in locales:
        _check_knowledge(project.with_locale(locale), files, domain)
    _check_models(project, files, locales)
    report.problems.sort()
    report.counts.update(locales=len(locales), intents=len(domain.intents),
                         responses=len(domain.responses))
    return report


def _check_domain(project: Project, files: _Files) -> _Domain:
    from rasa.shared.core.constants import DEFAULT_ACTION_NAMES

    domain = _Domain(actions=set(DEFAULT_ACTION_NAMES))
    path, report = project.domain, files.report
    name = files.name(path)
    root = files.node(path)
    if root is None:
        return domain
    for item in _seq(_get(root, "intents")[1]):
        # an intent is a name, or a mapping {name: {use_entities: ...}}
        key = _scalar(item) or next((k.value for k, _ in _items(item)), None)
        if key in domain.intents:
            report.add(name, item, f"intent {key!r} is listed twice")
        elif key:
            domain.intents[key] = item
    for item in _seq(_get(root, "entities")[1]):
        key = _scalar(item) or next((k.value for k, _ in _items(item)), None)
        if key:
            domain.entities.add(key)
    domain.responses = {k.value: k for k, _ in _items(_get(root, "responses")[1])}
    domain.forms = {k.value for k, _ in _items(_get(root, "forms")[1])}
    domain.actions |= {a for a in map(_scalar, _seq(_get(root, "actions")[1])) if a}
    domain.actions |= set(domain.responses) | domain.forms
    for action in map(_scalar, _seq(_get(root, "actions")[1])):
        if action and action.startswith("utter_") and action not in domain.responses:
            report.add(name, _get(root, "actions")[0], f"action {action!r} has no response")
    for key, value in _items(_get(root, "slots")[1]):
        domain.slots[key.value] = key
        for mapping in _seq(_get(value, "mappings")[1]):
            entity = _scalar(_get(mapping, "entity")[1])
            if entity and entity not in domain.entities:
                report.add(name, mapping, f"slot {key.value!r} is filled from entity "
                           f"{entity!r}, which the domain does not list")
            intent = _scalar(_get(mapping, "intent")[1])
            if intent and intent not in domain.intents:
                report.add(name, mapping, f"slot {key.value!r} mapping names unknown intent "
                           f"{intent!r}")
    for form, spec in _items(_get(root, "forms")[1]):
        for slot in _seq(_get(spec, "required_slots")[1]):
            if _scalar(slot) and _scalar(slot) not in domain.slots:
                report.add(name, slot, f"form {form.value!r} requires unknown slot "
                           f"{_scalar(slot)!r}")
    _rasa_domain_check(path, name, report)
    return domain


def _rasa_domain_check(path: Path, name: str, report: Report) -> None:
    """Rasa's own domain loader: what it refuses, Rasa would refuse at training."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.exceptions import RasaException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (Rasa warns about itself)
            Domain.load(str(path))
    except (RasaException, ValueError, KeyError, TypeError) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        report.add(name, 1, f"Rasa refuses the domain: {message[:300]}")


def _examples(value: yaml.Node | None) -> Iterator[tuple[str, int, list[str]]]:
    """An ``examples: |`` block's examples: text without annotations, line, entities."""
    if not isinstance(value, yaml.ScalarNode):
        return
    # A block scalar's text starts on the line after its indicator (|).
    first = value.start_mark.line + (2 if value.style in ("|", ">") else 1)
    for offset, raw in enumerate(str(value.value).split("\n")):
        text = raw.strip()
        if not text.startswith("-"):
            continue
        text = text[1:].strip()
        entities = []
        for m in _ANNOTATION.finditer(text):
            if m.group(2) is not None:
                entities.append(m.group(2).split(":")[0].strip())
            else:
                found = re.search(r'"entity"\s*:\s*"([^"]+)"', m.group(3) or "")
                if found:
                    entities.append(found.group(1))
        yield _ANNOTATION.sub(lambda m: m.group(1), text), first + offset, entities


def _nlu_items(node: yaml.Node | None) -> Iterator[tuple[str, yaml.Node, yaml.Node | None]]:
    """(intent, where its name is, its examples) for every ``- intent:`` of a data file."""
    for item in _seq(_get(node, "nlu")[1]):
        key, value = _get(item, "intent")
        if key is not None and _scalar(value):
            yield str(_scalar(value)), value, _get(item, "examples")[1]


def _check_nlu(project: Project, files: _Files, domain: _Domain) -> set[str]:
    """The locale's training data and held-out set against the domain; examples that are
    also held out. Returns the intents with training examples."""
    from rasa.shared.core.constants import DEFAULT_INTENTS

    report = files.report
    heldout: dict[str, str] = {}  # text -> where it is held out
    heldout_path = project.heldout
    if heldout_path.is_file():
        name = files.name(heldout_path)
        for intent, where, examples in _nlu_items(files.node(heldout_path)):
            if intent not in domain.intents and intent not in DEFAULT_INTENTS:
                report.add(name, where, f"intent {intent!r} is not in the domain")
            for text, line, _ in _examples(examples):
                heldout.setdefault(text, f"{name}:{line}")
    used: set[str] = set()
    paths = [p for p in sorted(project.nlu_dir.glob("*.yml")) if p.name not in NORMALIZER_FILES]
    for path in paths:
        name = files.name(path)
        for intent, where, examples in _nlu_items(files.node(path)):
            used.add(intent)
            if intent not in domain.intents:
                report.add(name, where, f"intent {intent!r} is not in the domain")
            for text, line, entities in _examples(examples):
                if text in heldout:
                    report.add(name, line, f"example {text!r} is also in the held-out set "
                               f"({heldout[text]})")
                for entity in entities:
                    if entity not in domain.entities:
                        report.add(name, line, f"entity {entity!r} is not in the domain")
    report.counts[f"examples_{project.locale}"] = sum(
        1 for path in paths for _, _, ex in _nlu_items(files.node(path)) for _ in _examples(ex))
    return used


def _check_rules(project: Project, files: _Files, domain: _Domain) -> set[str]:
    """Intents, responses, actions, slots and forms the rules name. Returns the intents."""
    report = files.report
    name = files.name(project.rules)
    used: set[str] = set()
    from rasa.shared.core.constants import DEFAULT_INTENTS, DEFAULT_SLOT_NAMES

    def steps(node: yaml.Node | None) -> Iterator[tuple[str, yaml.Node]]:
        for step in _seq(node):
            for key, value in _items(step):
                if key.value == "or":  # - or: [- intent: a, - intent: b]
                    yield from steps(value)
                else:
                    yield key.value, value

    for rule in _seq(_get(files.node(project.rules), "rules")[1]):
        for kind, value in [*steps(_get(rule, "steps")[1]), *steps(_get(rule, "condition")[1])]:
            word = _scalar(value)
            if kind == "intent" and word:
                used.add(word)
                if word not in domain.intents and word not in DEFAULT_INTENTS:
                    report.add(name, value, f"intent {word!r} is not in the domain")
            elif kind == "action" and word:
                if word.startswith("utter_") and word not in domain.responses:
                    report.add(name, value, f"response {word!r} is not in the domain")
                elif word not in domain.actions:
                    report.add(name, value, f"action {word!r} is not in the domain")
            elif kind == "active_loop" and word and word != "null" \
                    and word not in domain.forms:
                report.add(name, value, f"form {word!r} is not in the domain")
            elif kind == "slot_was_set":
                for slot in [*(_scalar(s) for s in _seq(value)),
                             *(k.value for s in _seq(value) for k, _ in _items(s))]:
                    if slot and slot not in domain.slots and slot not in DEFAULT_SLOT_NAMES:
                        report.add(name, value, f"slot {slot!r} is not in the domain")
    return used


def _check_locale_file(path: Path, files: _Files, domain: _Domain) -> None:
    """``expects:`` names responses and grammars that exist; the understanding blocks
    (fillers, loanwords, corrections, confidence) load."""
    from ivr.call import CONFIRM_PROMPT  # the engine's own prompt, not a response
    from ivr.dialogue.confidence import ConfidenceBands
    from ivr.dialogue.utterance import Corrections, Hesitations, Loanwords
    from ivr.errors import IvrError

    report, name = files.report, files.name(path)
    root = files.node(path)
    if root is None:
        return
    grammars = {k.value for k, _ in _items(_get(root, "grammars")[1])}
    expects_key, expects = _get(root, "expects")
    if expects_key is not None and not isinstance(expects, yaml.MappingNode):
        report.add(name, expects_key, "expects: must map responses to grammars")
    for response, wanted in _items(expects):
        if response.value not in domain.responses and response.value != CONFIRM_PROMPT:
            report.add(name, response, f"expects: {response.value!r} is not a response in "
                       "the domain")
        for grammar in _seq(wanted) or ([wanted] if _scalar(wanted) else []):
            if _scalar(grammar) not in grammars:
                report.add(name, grammar, f"expects: grammar {_scalar(grammar)!r} is not "
                           "under grammars:")
    for grammar in _seq(_get(root, "default_expects")[1]):
        if _scalar(grammar) not in grammars:
            report.add(name, grammar, f"default_expects: grammar {_scalar(grammar)!r} is not "
                       "under grammars:")
    _check_keypad(_get(root, "keypad")[1], name, report, domain)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    loaders = {"fillers": Hesitations.from_locale, "loanwords": Loanwords.from_locale,
               "corrections": Corrections.from_locale,
               "confidence": lambda _data, p: ConfidenceBands.for_locale(p)}
    for block, load in loaders.items():
        key, value = _get(root, block)
        if key is None:
            continue
        try:
            load(data, path)
        except IvrError as e:  # the engine's own loader says what is wrong, minus the file
            report.add(name, key, str(e).removeprefix(f"{path.name}: "))
            continue
        for k, _ in _items(value):
            if block in BLOCK_KEYS and k.value not in BLOCK_KEYS[block]:
                report.add(name, k, f"{block}: unknown key {k.value!r} (known: "
                           f"{', '.join(sorted(BLOCK_KEYS[block]))})")
    _, confidence = _get(root, "confidence")
    for intent in [*_seq(_get(confidence, "costly")[1]),
                   *(k for k, _ in _items(_get(confidence, "labels")[1]))]:
        if _scalar(intent) and _scalar(intent) not in domain.intents:
            report.add(name, intent, f"confidence: intent {_scalar(intent)!r} is not in the "
                       "domain")


def _check_keypad(keypad: yaml.Node | None, name: str, report: Report,
                  domain: _Domain) -> None:
    """``keypad:`` (ivr/voice/keypad.py): every key means an intent of the domain, and
    ``after:`` and ``instead:`` name responses (the engine's own loader checks the rest
    when a server starts)."""
    from ivr.call import CONFIRM_PROMPT

    for _, menu in _items(_get(keypad, "menus")[1]):
        for _, choice in _items(_get(menu, "keys")[1]):
            intent = _scalar(choice) or _scalar(_get(choice, "intent")[1])
            if intent and intent not in domain.intents:
                report.add(name, choice, f"keypad: intent {intent!r} is not in the domain")
    for block in ("after", "instead"):
        for response, _ in _items(_get(keypad, block)[1]):
            if response.value not in domain.responses and response.value != CONFIRM_PROMPT:
                report.add(name, response, f"keypad: {block}: {response.value!r} is not a "
                           "response in the domain")


def _check_knowledge(project: Project, files: _Files, domain: _Domain) -> None:
    """``knowledge/<locale>.yml``: the knowledge base loads, and its ``labels.topics`` has a
    label for every topic of the routing contract, each a domain intent."""
    from ivr.errors import IvrError
    from ivr.knowledge import KnowledgeBase
    from ivr.routing import TOPICS

    path = project.knowledge
    report, name = files.report, files.name(path)
    root = files.node(path)
    if root is None:
        return
    labels_key, labels = _get(root, "labels")
    topics_key, topics = _get(labels, "topics")
    present = {k.value for k, _ in _items(topics)}
    for intent in TOPICS:
        if intent not in present:
            report.add(name, topics_key or labels_key or 1,
                       f"labels.topics has no label for topic intent {intent!r}")
    for key, _ in _items(topics):
        if key.value not in domain.intents:
            report.add(name, key, f"labels.topics: {key.value!r} is not an intent in the "
                       "domain")
    if present >= set(TOPICS):  # (a missing topic is reported above, once)
        try:
            KnowledgeBase.load(path)
        except IvrError as e:
            report.add(name, labels_key or 1, str(e).removeprefix(f"{name}: "))


def _check_models(project: Project, files: _Files, locales: list[str]) -> None:
    """Each locale's live model was trained on the data as it is now (its file name ends
    in the fingerprint of its inputs)."""
    from ivr.errors import IvrError

    pointer = project.live_pointer
    lines: dict[str, int] = {}
    if pointer.is_file():
        for key, _ in _items(files.node(pointer)):
            lines[key.value] = key.start_mark.line + 1
    for locale in locales:
        each = project.with_locale(locale)
        try:
            live = each.live_model()
        except IvrError:
            continue  # no model yet: nothing to be out of date (`ivr models` says so)
        current = each.fingerprint()
        if live.name != each.model_for(current).name:
            fresh = each.model_for(current)
            fix = (f"`ivr promote {fresh.name}`" if fresh.is_file()
                   else "`ivr train`, then `ivr promote`")
            where = files.name(pointer) if locale in lines else files.name(
                each.promotions_log)
            files.report.add(where, lines.get(locale, 1),
                             f"the live {locale} model {live.name} is out of date with its "
                             f"data (fingerprint now {current}): {fix}")


def summary(report: Report) -> str:
    c = report.counts
    examples = ", ".join(f"{k.removeprefix('examples_')} {v}" for k, v in sorted(c.items())
                         if k.startswith("examples_"))
    return (f"valid: {c.get('intents', 0)} intents, {c.get('responses', 0)} responses, "
            f"{c.get('locales', 0)} locale(s); training examples {examples or 'none'}; live "
            "models up to date")
