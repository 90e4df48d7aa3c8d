"""The Review page, for trainers: the review queue of misunderstood utterances in clusters,
labelling them (an intent, an ASR error, a dialect synonym), and proposing new intents for
another trainer to accept or reject (ivr/trainer/: review.py, labelling.py, proposals.py).
Labelling writes the project's training data: it runs off the event loop, and what it
refuses becomes a 400 (a call it cannot find a 404)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ivr.calllog.store import CallLogError
from ivr.console.handling import (
    Refused,
    blocking,
    context,
    error_answer,
    finite,
    json_answer,
    json_body,
    locale_project,
    number,
    session,
)
from ivr.errors import IvrError
from ivr.project import Project
from ivr.trainer import labelling, proposals, review

T = TypeVar("T")

REVIEW_HOURS = 24 * 7  # the queue's default period, as `ivr review list --since 7d`


def _since(request: web.Request, hours: Any = None) -> float:
    """The start of the review period: ``hours`` back (the query's, or a JSON body's: a
    label resolves a cluster id against the queue the page listed), default a week."""
    hours = (number(request, "hours", REVIEW_HOURS, 1 / 60, 24 * 3660) if hours is None
             else finite("hours", hours if not isinstance(hours, str) else None, 1 / 60,
                         24 * 3660))
    return time.time() - hours * 3600


async def _labelling(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A labelling function off the event loop; what it refuses becomes a 400."""
    try:
        return await blocking(functools.partial(fn, *args, **kwargs))
    except CallLogError as e:
        raise Refused(404, e.message, e.remedy) from None
    except IvrError as e:
        raise Refused(400, e.message, e.remedy) from None


def _shown(project: Project, result: labelling.LabelResult) -> dict[str, Any]:
    """A label's result for the page: the file relative to the project (the server's own
    folders are none of the browser's business)."""
    return {**result.as_dict(),
            "file": str(result.file.relative_to(project.root)) if result.file else None}


async def review_queue(request: web.Request) -> web.StreamResponse:
    """The review queue of a locale (query ``locale``, ``hours``): clusters, most calls
    affected first."""
    project = locale_project(request, request.query.get("locale"))
    clusters = await _labelling(review.review_queue, context(request).store, project.locale,
                                _since(request), locale_file=project.locale_file)
    return json_answer({"locale": project.locale, "locales": project.locales(),
                        "clusters": [c.summary() for c in clusters]})


async def review_options(request: web.Request) -> web.StreamResponse:
    """What a label may say in a locale: the intents its training data has examples of
    (``label_intent`` accepts no other) and the dialect codes of its synonyms."""
    project = locale_project(request, request.query.get("locale"))
    examples = await _labelling(labelling.training_examples, project)
    dialects = await _labelling(labelling.dialect_codes, project) if (
        project.normalizer_files()) else []
    return json_answer({"locale": project.locale, "intents": sorted({e.intent for e in examples}),
                        "dialects": dialects, "routes": list(proposals.ROUTES)})


async def one_cluster(request: web.Request) -> web.StreamResponse:
    """One cluster with its utterances in full (query ``locale``, ``hours``)."""
    project = locale_project(request, request.query.get("locale"))
    clusters = await _labelling(review.review_queue, context(request).store, project.locale,
                                _since(request), locale_file=project.locale_file)
    try:
        cluster = review.find_cluster(clusters, request.match_info["cluster_id"])
    except review.ReviewError as e:
        return error_answer(404, e.message, e.remedy)
    return json_answer(cluster.as_dict())


async def label_intent(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "target": CLUSTER_ID or CALL_ID:TURN, "intent", "hours"}``: the
    utterances become examples of the intent; each one's outcome (added, exists, masked,
    conflict) comes back."""
    body = await json_body(request, "locale", "target", "intent")
    project = locale_project(request, body["locale"])
    store = context(request).store
    items, cluster = await _labelling(review.resolve, store, body["target"].strip(),
                                      project.locale, _since(request, body.get("hours")),
                                      locale_file=project.locale_file)
    result = await _labelling(labelling.label_intent, project, store, items,
                              body["intent"].strip(), session(request).user, cluster)
    return json_answer({"cluster": cluster, **_shown(project, result)})


async def asr_error(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "item": CALL_ID:TURN, "said", "intent"?}``: what the caller really
    said (with an intent, an example of it too)."""
    body = await json_body(request, "locale", "item", "said")
    project = locale_project(request, body["locale"])
    store = context(request).store
    item = await _labelling(review.find_item, store, body["item"].strip(), project.locale_file)
    result = await _labelling(labelling.mark_asr_error, project, store, item, body["said"],
                              session(request).user, intent=body.get("intent") or None)
    return json_answer(_shown(project, result))


async def synonym(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "key", "mandarin", "dialect", "target"?, "force"?, "hours"?}``: a
    dialect phrase (or, with dialect ``asr``, a near-homophone's term) for the normaliser;
    ``target`` (a cluster or CALL_ID:TURN) is labelled with it."""
    body = await json_body(request, "locale", "key", "mandarin", "dialect")
    project = locale_project(request, body["locale"])
    store = context(request).store
    items, cluster = [], None
    if isinstance(body.get("target"), str) and body["target"].strip():
        items, cluster = await _labelling(review.resolve, store, body["target"].strip(),
                                          project.locale, _since(request, body.get("hours")),
                                          locale_file=project.locale_file)
    result = await _labelling(labelling.add_synonym, project, store, body["key"],
                              body["mandarin"], body["dialect"].strip(),
                              session(request).user, items, cluster,
                              force=body.get("force") is True)
    return json_answer({"file": str(result.file.relative_to(project.root)),
                        "dialect": result.dialect, "key": result.key, "mandarin": result.mandarin})


async def list_proposals(request: web.Request) -> web.StreamResponse:
    """The locale's proposed intents (query ``locale``), newest first."""
    project = locale_project(request, request.query.get("locale"))
    found = await _labelling(proposals.read_proposals, project)
    return json_answer({"locale": project.locale,
                        "proposals": [p.as_dict() for p in reversed(found)]})


async def propose_intent(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "target": CLUSTER or CALL_ID:TURN, "intent", "label", "route",
    "hours"?}``: propose a new intent for the utterances (ivr/trainer/proposals.py), pending review;
    the live domain and training data are not touched."""
    body = await json_body(request, "locale", "target", "intent", "label", "route")
    project = locale_project(request, body["locale"])
    store = context(request).store
    items, cluster = await _labelling(review.resolve, store, body["target"].strip(),
                                      project.locale, _since(request, body.get("hours")),
                                      locale_file=project.locale_file)
    proposal, outcomes = await _labelling(
        proposals.propose, project, store, items, body["intent"], body["label"],
        body["route"].strip(), session(request).user, cluster)
    return json_answer({"proposal": proposal.as_dict(), "cluster": cluster,
                        "outcomes": [o.__dict__ for o in outcomes]}, 201)


async def decide_proposal(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "decision": "accept" or "reject", "note"?}`` on a pending proposal,
    by someone other than its author."""
    body = await json_body(request, "locale", "decision")
    if body["decision"] not in ("accept", "reject"):
        return error_answer(400, "decision must be accept or reject")
    project = locale_project(request, body["locale"])
    note = body.get("note") if isinstance(body.get("note"), str) else ""
    try:
        proposal = await blocking(functools.partial(
            proposals.decide, project, context(request).store,
            request.match_info["proposal_id"], body["decision"] == "accept",
            session(request).user, note))
    except proposals.NoSuchProposal as e:
        return error_answer(404, e.message)
    except proposals.ProposalError as e:  # decided already, or the author's own
        return error_answer(409, e.message)
    except IvrError as e:
        return error_answer(400, e.message, e.remedy)
    return json_answer({"proposal": proposal.as_dict()})
