"""The engine's own files checked against the domain: ``locales/*.yml`` (expected answers,
keypad menus, understanding blocks) and each locale's knowledge base."""

from __future__ import annotations

from pathlib import Path

import yaml

from ivr.project import Project
from ivr.trainer.data_validation.rasa_data import DomainNames
from ivr.trainer.data_validation.report import Report
from ivr.trainer.data_validation.yaml_nodes import (
    YamlFiles,
    node_get,
    node_items,
    node_scalar,
    node_seq,
)

# What each locale-file block may hold (ivr/dialogue/utterance.py, confidence.py): an
# unknown key is a typo the loaders would silently ignore.
BLOCK_KEYS = {
    "fillers": {"interjections", "phrases", "patterns", "particles"},
    "corrections": {"negations", "openers", "requests", "cues", "restates", "infixes"},
    "confidence": {"confirm", "accept", "control_accept", "costly_accept", "costly",
                   "asr_trust", "ask", "again", "labels"},
}

def check_locale_file(path: Path, files: YamlFiles, domain: DomainNames) -> None:
    """``expects:`` names responses and grammars that exist; the understanding blocks
    (fillers, loanwords, corrections, quantities, confidence) load."""
    from ivr.dialogue.call import CONFIRM_PROMPT  # the engine's own prompt, not a response
    from ivr.dialogue.confidence import ConfidenceBands
    from ivr.dialogue.utterance import Corrections, Hesitations, Loanwords, Quantities
    from ivr.errors import IvrError

    report, name = files.report, files.name(path)
    root = files.node(path)
    if root is None:
        return
    grammars = {k.value for k, _ in node_items(node_get(root, "grammars")[1])}
    expects_key, expects = node_get(root, "expects")
    if expects_key is not None and not isinstance(expects, yaml.MappingNode):
        report.add(name, expects_key, "expects: must map responses to grammars")
    for response, wanted in node_items(expects):
        if response.value not in domain.responses and response.value != CONFIRM_PROMPT:
            report.add(name, response, f"expects: {response.value!r} is not a response in "
                       "the domain")
        for grammar in node_seq(wanted) or ([wanted] if node_scalar(wanted) else []):
            if node_scalar(grammar) not in grammars:
                report.add(name, grammar, f"expects: grammar {node_scalar(grammar)!r} is not "
                           "under grammars:")
    for grammar in node_seq(node_get(root, "default_expects")[1]):
        if node_scalar(grammar) not in grammars:
            report.add(name, grammar, f"default_expects: grammar {node_scalar(grammar)!r} is not "
                       "under grammars:")
    _check_keypad(node_get(root, "keypad")[1], name, report, domain)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    loaders = {"fillers": Hesitations.from_locale, "loanwords": Loanwords.from_locale,
               "corrections": Corrections.from_locale, "quantities": Quantities.from_locale,
               "confidence": lambda _data, p: ConfidenceBands.for_locale(p)}
    for block, load in loaders.items():
        key, value = node_get(root, block)
        if key is None:
            continue
        try:
            load(data, path)
        except IvrError as e:  # the engine's own loader says what is wrong, minus the file
            report.add(name, key, str(e).removeprefix(f"{path.name}: "))
            continue
        for k, _ in node_items(value):
            if block in BLOCK_KEYS and k.value not in BLOCK_KEYS[block]:
                report.add(name, k, f"{block}: unknown key {k.value!r} (known: "
                           f"{', '.join(sorted(BLOCK_KEYS[block]))})")
    _, confidence = node_get(root, "confidence")
    for intent in [*node_seq(node_get(confidence, "costly")[1]),
                   *(k for k, _ in node_items(node_get(confidence, "labels")[1]))]:
        if node_scalar(intent) and node_scalar(intent) not in domain.intents:
            report.add(name, intent, f"confidence: intent {node_scalar(intent)!r} is not in the "
                       "domain")


def _check_keypad(keypad: yaml.Node | None, name: str, report: Report,
                  domain: DomainNames) -> None:
    """``keypad:`` (ivr/voice/keypad.py): every key means an intent of the domain, and
    ``after:`` and ``instead:`` name responses (the engine's own loader checks the rest
    when a server starts)."""
    from ivr.dialogue.call import CONFIRM_PROMPT

    for _, menu in node_items(node_get(keypad, "menus")[1]):
        for _, choice in node_items(node_get(menu, "keys")[1]):
            intent = node_scalar(choice) or node_scalar(node_get(choice, "intent")[1])
            if intent and intent not in domain.intents:
                report.add(name, choice, f"keypad: intent {intent!r} is not in the domain")
    for block in ("after", "instead"):
        for response, _ in node_items(node_get(keypad, block)[1]):
            if response.value not in domain.responses and response.value != CONFIRM_PROMPT:
                report.add(name, response, f"keypad: {block}: {response.value!r} is not a "
                           "response in the domain")


def check_knowledge(project: Project, files: YamlFiles, domain: DomainNames) -> None:
    """``knowledge/<locale>.yml``: the knowledge base loads, and its ``labels.topics`` has a
    label for every topic of the routing contract, each a domain intent."""
    from ivr.dialogue.knowledge import KnowledgeBase
    from ivr.dialogue.routing import TOPICS
    from ivr.errors import IvrError

    path = project.knowledge
    report, name = files.report, files.name(path)
    root = files.node(path)
    if root is None:
        return
    labels_key, labels = node_get(root, "labels")
    topics_key, topics = node_get(labels, "topics")
    present = {k.value for k, _ in node_items(topics)}
    for intent in TOPICS:
        if intent not in present:
            report.add(name, topics_key or labels_key or 1,
                       f"labels.topics has no label for topic intent {intent!r}")
    for key, _ in node_items(topics):
        if key.value not in domain.intents:
            report.add(name, key, f"labels.topics: {key.value!r} is not an intent in the "
                       "domain")
    if present >= set(TOPICS):  # (a missing topic is reported above, once)
        try:
            KnowledgeBase.load(path)
        except IvrError as e:
            report.add(name, labels_key or 1, str(e).removeprefix(f"{name}: "))
