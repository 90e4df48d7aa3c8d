"""A trainer's proposal of a new intent, for a review cluster that no existing intent fits.

A trainer cannot change the live domain from the browser, so a proposal is a candidate
change: stored in ``nlu_data/<locale>/proposals/intents.yml`` with the cluster's utterances
attached as Rasa examples. That folder is not training data: only ``nlu_data/<locale>/*.yml``
is (``Project.nlu_files``), so a proposal neither changes the model's fingerprint nor reaches
Rasa. Another trainer or an admin accepts or rejects it in the console; a developer turns an
accepted one into domain and data (docs/review.md, "Proposed intents"). The utterances are
labelled (``kind: proposal``, no intent) and leave the review queue like any label's.
All synchronous, like ivr/trainer/labelling.py (the console runs these in its executor).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ivr.calllog.store import CallStore
from ivr.console.accounts import AccountStore
from ivr.core.masking import mask_text
from ivr.dialogue.routing import QUEUES
from ivr.errors import DataFileError, IvrError, shown
from ivr.project import Project
from ivr.trainer.label_files import one_at_a_time, utc_now
from ivr.trainer.labelling import Outcome, _consider, _Index, _same_locale
from ivr.trainer.review import Item
from ivr.yamlfile import read_mapping, read_yaml

ANSWER = "answer"  # the engine serves the new intent itself (a developer writes the answer)
ROUTES = (ANSWER, *QUEUES)
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
MAX_NAME, MAX_LABEL, MAX_NOTE = 64, 40, 200
_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")  # snake_case, ASCII
_HAN = re.compile(r"[\u3400-\u9fff]")
# Names Rasa gives meaning to, though domain.yml does not list them.
_RESERVED = frozenset({"nlu_fallback"})
HEADER = ("# New intents trainers proposed in the console, each with the utterances it was\n"
          "# proposed for. Written by the engine; not training data (see docs/review.md,\n"
          "# \"Proposed intents\", for how an accepted one becomes domain and data).\n")


class ProposalError(IvrError):
    """A proposal that cannot be made or decided (bad name, label or route; no such one)."""


class NoSuchProposal(ProposalError):
    """No proposal of that id in the locale."""


@dataclass
class Proposal:
    id: str
    locale: str
    intent: str
    label: str  # Chinese, as callers would hear it ("请问您是要{label}…")
    route: str  # ``answer`` or a queue of docs/routing.md
    proposed_by: str
    proposed_at: str
    cluster: str | None
    examples: list[dict[str, Any]] = field(default_factory=list)  # as labelled.yml's
    status: str = PENDING
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def proposals_file(project: Project) -> Path:
    return project.nlu_dir / "proposals" / "intents.yml"


def read_proposals(project: Project) -> list[Proposal]:
    """The locale's proposals, oldest first (none yet: [])."""
    path = proposals_file(project)
    if not path.is_file():
        return []
    entries = (read_yaml(path) or {}).get("proposals") or []
    try:
        return [Proposal(**entry) for entry in entries]
    except TypeError:  # a hand edit that dropped or misspelt a field
        raise DataFileError(f"{shown(path)}: each proposal needs the fields of the others "
                            "(id, locale, intent, label, route, ...)") from None


def domain_intents(project: Project) -> set[str]:
    """The intents of domain.yml (plain names or ``{name: {...}}`` entries)."""
    intents = read_mapping(project.domain).get("intents") or []
    return {next(iter(i)) if isinstance(i, dict) else str(i) for i in intents}


def check(project: Project, intent: str, label: str, route: str) -> tuple[str, str]:
    """The name and label as they would be stored, or the first thing wrong with them
    (against domain.yml and the proposals; ``propose`` also checks the training data)."""
    intent, label = intent.strip(), " ".join(label.split())
    if len(intent) > MAX_NAME or not _NAME.fullmatch(intent):
        raise ProposalError(f"an intent name is snake_case: lower-case ASCII letters, digits "
                            f"and single underscores, starting with a letter, at most "
                            f"{MAX_NAME} characters (not {intent[:MAX_NAME + 1]!r})")
    if intent in domain_intents(project) | _RESERVED:
        raise ProposalError(f"{intent!r} is an existing intent: label the cluster with it")
    for p in read_proposals(project):
        if p.intent == intent and p.status != REJECTED:
            raise ProposalError(f"{intent!r} was proposed already by {p.proposed_by} "
                                f"({p.status})")
    if not label or len(label) > MAX_LABEL or not _HAN.search(label):
        raise ProposalError(f"the label is what callers would hear, in Chinese: 1 to "
                            f"{MAX_LABEL} characters")
    if route not in ROUTES:
        raise ProposalError(f"route {route!r}: {ANSWER} (the engine answers) or a queue: "
                            f"{', '.join(QUEUES)}")
    return intent, mask_text(label)


@one_at_a_time
def propose(project: Project, store: CallStore, items: list[Item], intent: str, label: str,
            route: str, by: str, cluster: str | None = None) -> tuple[Proposal, list[Outcome]]:
    """Propose ``intent`` for ``items``: each becomes one of its examples unless it is an
    example of an existing intent already (``conflict``: not attached, stays in the queue)
    or has masked digits (``masked``: labelled, never an example). Refused when no
    utterance would be attached."""
    _same_locale(project, items)
    intent, label = check(project, intent, label, route)
    index = _Index(project)
    if intent in index.intents:  # examples of an intent the domain does not list
        raise ProposalError(f"{intent!r} has training examples already: label the cluster "
                            "with it")
    outcomes, examples = [], []
    for item in items:
        outcome, text = _consider(index, item.key, item.text, intent)
        outcomes.append(outcome)
        if text:
            metadata: dict[str, Any] = {"call": item.call_id, "turn": item.n}
            if form := index.form(text):
                metadata["form"] = form
            examples.append({"text": text, "metadata": metadata})
    if not examples:
        raise ProposalError("none of the utterances can be an example of a new intent "
                            "(each is masked, or an example of an existing intent)")
    at = utc_now()
    digest = hashlib.sha1(f"{project.locale}\n{intent}\n{at}".encode()).hexdigest()
    proposal = Proposal(f"p{digest[:10]}", project.locale, intent, label, route, by, at,
                        cluster, examples)
    _write(project, [*read_proposals(project), proposal])
    note = f"proposed intent {intent} ({proposal.id})"
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome.status != "conflict":
            store.add_label(item.call_id, by, turn=item.n, text=item.text, kind="proposal",
                            cluster=cluster, note=note)
    AccountStore(store.engine).audit(by, "propose_intent", None,
                                     f"{project.locale} {intent} → {route} ({proposal.id})")
    return proposal, outcomes


@one_at_a_time
def decide(project: Project, store: CallStore, proposal_id: str, accept: bool, by: str,
           note: str = "") -> Proposal:
    """Accept or reject a pending proposal; someone other than its author decides."""
    proposals = read_proposals(project)
    found = next((p for p in proposals if p.id == proposal_id), None)
    if found is None:
        raise NoSuchProposal(f"no proposal {proposal_id!r} in {project.locale}")
    if found.status != PENDING:
        raise ProposalError(f"proposal {found.intent!r} was {found.status} already by "
                            f"{found.reviewed_by}")
    if found.proposed_by == by:
        raise ProposalError("a proposal is reviewed by someone other than its author")
    found.status = ACCEPTED if accept else REJECTED
    found.reviewed_by, found.reviewed_at = by, utc_now()
    found.note = mask_text(" ".join(note.split()))[:MAX_NOTE] or None
    _write(project, proposals)
    AccountStore(store.engine).audit(by, "accept_intent" if accept else "reject_intent", None,
                                     f"{project.locale} {found.intent} ({found.id})")
    return found


def _write(project: Project, proposals: list[Proposal]) -> None:
    """The whole file, atomically (the engine owns it: there are no comments to keep)."""
    path = proposals_file(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump({"proposals": [p.as_dict() for p in proposals]},
                          allow_unicode=True, sort_keys=False, width=100)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(HEADER + body, encoding="utf-8")
    tmp.replace(path)
