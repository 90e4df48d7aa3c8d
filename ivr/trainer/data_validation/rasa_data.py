"""The Rasa data checked against each other: the domain, every locale's training data and
held-out set, and the rules."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.project import NORMALIZER_FILES, Project
from ivr.trainer.data_validation.report import Report
from ivr.trainer.data_validation.yaml_nodes import (
    YamlFiles,
    node_get,
    node_items,
    node_scalar,
    node_seq,
)

_ANNOTATION = re.compile(r"\[([^\]]*)\](?:\(([^)]*)\)|\{([^}]*)\})")

@dataclass
class DomainNames:
    intents: dict[str, yaml.Node] = field(default_factory=dict)
    entities: set[str] = field(default_factory=set)
    slots: dict[str, yaml.Node] = field(default_factory=dict)
    responses: dict[str, yaml.Node] = field(default_factory=dict)
    actions: set[str] = field(default_factory=set)
    forms: set[str] = field(default_factory=set)


def check_domain(project: Project, files: YamlFiles) -> DomainNames:
    from rasa.shared.core.constants import DEFAULT_ACTION_NAMES

    domain = DomainNames(actions=set(DEFAULT_ACTION_NAMES))
    path, report = project.domain, files.report
    name = files.name(path)
    root = files.node(path)
    if root is None:
        return domain
    for item in node_seq(node_get(root, "intents")[1]):
        # an intent is a name, or a mapping {name: {use_entities: ...}}
        key = node_scalar(item) or next((k.value for k, _ in node_items(item)), None)
        if key in domain.intents:
            report.add(name, item, f"intent {key!r} is listed twice")
        elif key:
            domain.intents[key] = item
    for item in node_seq(node_get(root, "entities")[1]):
        key = node_scalar(item) or next((k.value for k, _ in node_items(item)), None)
        if key:
            domain.entities.add(key)
    domain.responses = {k.value: k for k, _ in node_items(node_get(root, "responses")[1])}
    domain.forms = {k.value for k, _ in node_items(node_get(root, "forms")[1])}
    domain.actions |= {a for a in map(node_scalar, node_seq(node_get(root, "actions")[1])) if a}
    domain.actions |= set(domain.responses) | domain.forms
    for action in map(node_scalar, node_seq(node_get(root, "actions")[1])):
        if action and action.startswith("utter_") and action not in domain.responses:
            report.add(name, node_get(root, "actions")[0], f"action {action!r} has no response")
    for key, value in node_items(node_get(root, "slots")[1]):
        domain.slots[key.value] = key
        for mapping in node_seq(node_get(value, "mappings")[1]):
            entity = node_scalar(node_get(mapping, "entity")[1])
            if entity and entity not in domain.entities:
                report.add(name, mapping, f"slot {key.value!r} is filled from entity "
                           f"{entity!r}, which the domain does not list")
            intent = node_scalar(node_get(mapping, "intent")[1])
            if intent and intent not in domain.intents:
                report.add(name, mapping, f"slot {key.value!r} mapping names unknown intent "
                           f"{intent!r}")
    for form, spec in node_items(node_get(root, "forms")[1]):
        for slot in node_seq(node_get(spec, "required_slots")[1]):
            if node_scalar(slot) and node_scalar(slot) not in domain.slots:
                report.add(name, slot, f"form {form.value!r} requires unknown slot "
                           f"{node_scalar(slot)!r}")
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
    for item in node_seq(node_get(node, "nlu")[1]):
        key, value = node_get(item, "intent")
        if key is not None and node_scalar(value):
            yield str(node_scalar(value)), value, node_get(item, "examples")[1]


def check_nlu(project: Project, files: YamlFiles, domain: DomainNames) -> set[str]:
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


def check_rules(project: Project, files: YamlFiles, domain: DomainNames) -> set[str]:
    """Intents, responses, actions, slots and forms the rules name. Returns the intents."""
    report = files.report
    name = files.name(project.rules)
    used: set[str] = set()
    from rasa.shared.core.constants import DEFAULT_INTENTS, DEFAULT_SLOT_NAMES

    def steps(node: yaml.Node | None) -> Iterator[tuple[str, yaml.Node]]:
        for step in node_seq(node):
            for key, value in node_items(step):
                if key.value == "or":  # - or: [- intent: a, - intent: b]
                    yield from steps(value)
                else:
                    yield key.value, value

    for rule in node_seq(node_get(files.node(project.rules), "rules")[1]):
        for kind, value in [*steps(node_get(rule, "steps")[1]),
                            *steps(node_get(rule, "condition")[1])]:
            word = node_scalar(value)
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
                for slot in [*(node_scalar(s) for s in node_seq(value)),
                             *(k.value for s in node_seq(value) for k, _ in node_items(s))]:
                    if slot and slot not in domain.slots and slot not in DEFAULT_SLOT_NAMES:
                        report.add(name, value, f"slot {slot!r} is not in the domain")
    return used
