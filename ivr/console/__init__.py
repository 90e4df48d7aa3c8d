"""The ops console: a web page in the engine's own aiohttp app, under ``/console``.

Ops and trainers list calls with filters, open a call's timeline (every turn with how it
was heard, understood and answered, the recording to listen to), replay a call against a
model to see what would change, and watch live figures. Trainers also work the review
queue (label a cluster of misunderstood utterances, mark an ASR error, add a dialect
synonym), train a candidate model, compare it with the live one and promote it, which
swaps it into this running server. Admins may do all of that and manage the console's
users (``/console/api/users``). The page is plain HTML, JavaScript and CSS from
``static/``: nothing is fetched from elsewhere, so it works on a bank's closed network.

Every route and the roles allowed on it are in one table, ``ROUTES``; ``add_console``
registers them behind a login check, and docs/console.md prints the same table.
The store and the labelling functions are synchronous (SQLAlchemy, Rasa's data loader),
so handlers call them on the default executor, never on the event loop the live calls run
on; training runs in a child process, and models load on their own dialogue threads.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from ivr import labelling, proposals, review, zone
from ivr.calllog.store import CallFilter, CallLogError, CallStore, UserChangeRefused
from ivr.calllog.timeline import turn_view
from ivr.console import i18n, kpi
from ivr.console.auth import (
    ADMIN,
    COOKIE,
    CSRF_HEADER,
    MIN_PASSWORD,
    OPS,
    ROLES,
    TRAINER,
    Session,
    Sessions,
    check_password,
    dummy_hash,
    hash_password,
)
from ivr.console.throttle import LoginThrottle
from ivr.errors import IvrError, ModelNotFoundError, Remedy
from ivr.project import Project
from ivr.trends import trends

if TYPE_CHECKING:
    from ivr.calllog.replay import Replayer
    from ivr.live_models import LiveModels
    from ivr.training import Trainer

STATIC = Path(__file__).parent / "static"
# Admins may do everything the others may, and manage the console's users.
READERS = frozenset({OPS, TRAINER, ADMIN})  # read calls, audio and figures, run replays
TRAINERS = frozenset({TRAINER, ADMIN})
ADMINS = frozenset({ADMIN})
OPERATORS = frozenset({OPS, ADMIN})  # see and clear phone verification locks

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ConsoleContext:
    """What the console reads; the server sets it at startup (``app[CONSOLE]``)."""

    store: CallStore
    recordings: Path | None  # folder the calls' ``recording`` paths are relative to
    replayer: Replayer
    live_calls: Callable[[], int]  # calls in progress on this engine
    # The trainers' pages (review, labels, training, promotion); without a project root
    # they answer 503. ``live_models`` swaps a promoted model into this server.
    project_root: Path | None = None
    trainer: Trainer | None = None
    live_models: LiveModels | None = None


CONSOLE = web.AppKey("console", ConsoleContext)
SESSIONS = web.AppKey("console_sessions", Sessions)
THROTTLE = web.AppKey("console_throttle", LoginThrottle)
# One replay at a time: the Replayer's bank stand-in holds one call's recorded
# verification answers while it replays, so two at once would mix them up.
_SESSION = "console_session"  # the request's Session, set by the login check

# Chinese (and Korean) text goes out as is, not as \u escapes.
_dumps = functools.partial(json.dumps, ensure_ascii=False, default=str)
_HEADERS = {
    # Only this server's own scripts, styles and media: the page has no inline script,
    # so an injected <script> cannot run.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # call data must not linger in shared caches
}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _error(status: int, message: str, remedy: Remedy | None = None) -> web.Response:
    """``{"error"}``, and the ``remedy`` code the page says in its language: never the
    CLI's flags (ivr/errors.py)."""
    return _json({"error": message, **({"remedy": remedy.code} if remedy else {})}, status)


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a store (or scrypt) call off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


class _Refused(Exception):
    """A request the console answers with an error (status and a JSON message)."""

    def __init__(self, status: int, message: str, remedy: Remedy | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.remedy = remedy


def _context(request: web.Request) -> ConsoleContext:
    try:
        return request.app[CONSOLE]
    except KeyError:
        raise _Refused(503, "the call log is not open") from None


def _session(request: web.Request) -> Session:
    return request[_SESSION]


# --- pages and static files ---------------------------------------------------------------
def _page(request: web.Request, name: str) -> web.Response:
    """A page in the language the switch's cookie or the browser asks for (ivr/console/i18n.py)."""
    lang = i18n.negotiate(request.cookies.get(i18n.COOKIE),
                          request.headers.get("Accept-Language"))
    root = request.app[CONSOLE].project_root if CONSOLE in request.app else None
    return web.Response(text=i18n.render(name, lang, root), content_type="text/html",
                        headers={"Content-Language": lang, "Vary": "Cookie, Accept-Language"})


async def _index(request: web.Request) -> web.StreamResponse:
    return _page(request, "index.html")


async def _login_page(request: web.Request) -> web.StreamResponse:
    return _page(request, "login.html")


_STATIC_NAME = re.compile(r"[a-z0-9_-]+\.(js|css|svg)")


async def _static(request: web.Request) -> web.StreamResponse:
    """Scripts, styles, the icon (no data in them, so the login page may load them)."""
    name = request.match_info["name"]
    path = STATIC / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise _Refused(404, "no such file")
    return web.FileResponse(path)


# --- signing in and out --------------------------------------------------------------------
async def _login(request: web.Request) -> web.StreamResponse:
    """JSON ``{"name", "password"}`` (JSON only: a cross-site form cannot send it, so no
    other site can log a browser in)."""
    if request.content_type != "application/json":
        return _error(415, "send JSON")
    try:
        body = await request.json()
        name, password = str(body["name"]), str(body["password"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "need JSON with name and password")
    sessions, throttle, store = request.app[SESSIONS], request.app[THROTTLE], \
        _context(request).store
    # Counted per source and per (source, name), never per name alone: someone else's
    # wrong passwords must not lock a user out (ivr/console/throttle.py).
    # (every X-Forwarded-For line: a proxy may add its own after the client's)
    source = throttle.source(request.remote,
                             ",".join(request.headers.getall("X-Forwarded-For", [])))
    attempt = await _blocking(throttle.begin, store, source, name)
    if attempt.wait_s:
        refused = _error(429, "too many wrong passwords from here: try again in "
                              f"{attempt.retry_after} s")
        refused.headers["Retry-After"] = attempt.retry_after
        return refused
    user = await _blocking(store.user, name)
    ok = await _blocking(check_password, password, user["password_hash"] if user
                         else dummy_hash())
    if not (user and ok and user["role"] in ROLES):
        return _error(401, "wrong name or password")  # the try's row stays: a failure
    await _blocking(throttle.succeeded, store, attempt)
    if user.get("disabled"):  # told only to whoever knows the password
        return _error(403, "this user is disabled")
    session = await _blocking(sessions.open, store, user["name"], user["role"])
    await _blocking(store.audit, session.user, "login", None)
    response = _json({"name": session.user, "role": session.role, "csrf": session.csrf})
    response.set_cookie(COOKIE, session.token or "", path="/console", httponly=True,
                        samesite="Strict", secure=request.secure)
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    await _blocking(request.app[SESSIONS].close, _context(request).store, _session(request))
    response = _json({"ok": True})
    response.del_cookie(COOKIE, path="/console")
    return response


async def _me(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    return _json({"name": session.user, "role": session.role, "csrf": session.csrf})


# --- calls ---------------------------------------------------------------------------------
def _finite(name: str, raw: Any, low: float, high: float, whole: bool = False) -> float:
    """A number a request gave (query text or a JSON value) from ``low`` to ``high``, else
    a 400 naming it: ``nan``, ``inf``, negative or huge values never reach a query or the
    JSON answer (``limit=nan`` was a 500, ``hours=nan`` a ``NaN`` no JSON parser reads)."""
    kind = "a whole number" if whole else "a number"
    try:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise TypeError(raw)
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise _Refused(400, f"{name} must be {kind}") from None
    if not (math.isfinite(value) and low <= value <= high) or (whole and not value.is_integer()):
        raise _Refused(400, f"{name} must be {kind} from {low:g} to {high:g}")
    return value


def _number(request: web.Request, name: str, default: float, low: float, high: float,
            whole: bool = False) -> float:
    """A query parameter by ``_finite`` (absent or empty: ``default``)."""
    raw = request.query.get(name)
    return default if raw in (None, "") else _finite(name, raw, low, high, whole)


def _optional(request: web.Request, name: str, low: float, high: float) -> float | None:
    """A query parameter by ``_finite``, or None when absent or empty."""
    raw = request.query.get(name)
    return None if raw in (None, "") else _finite(name, raw, low, high)


async def _calls(request: web.Request) -> web.StreamResponse:
    """Calls, newest first. Query: outcome, queue, intent, caller, status, since/until
    (Unix seconds), limit, offset."""
    q = request.query
    f = CallFilter(
        since=_optional(request, "since", 0, 1e12),
        until=_optional(request, "until", 0, 1e12),
        **{k: q.get(k) or None for k in ("outcome", "queue", "intent", "caller", "status")},
        limit=int(_number(request, "limit", 50, 1, 500, whole=True)),
        offset=int(_number(request, "offset", 0, 0, 1e9, whole=True)))
    return _json({"calls": await _blocking(_context(request).store.list_calls, f)})


async def _find(request: web.Request) -> dict[str, Any]:
    try:
        return await _blocking(_context(request).store.find_call, request.match_info["call_id"])
    except CallLogError as e:
        raise _Refused(404, str(e)) from None


async def _timeline(request: web.Request) -> web.StreamResponse:
    """A call: its summary, its events, the per-turn view, and who has opened it."""
    store = _context(request).store
    call = await _find(request)
    events = await _blocking(store.events, call["call_id"])
    await _blocking(store.audit, _session(request).user, "view", call["call_id"])
    return _json({"call": call, "events": events, "turns": turn_view(events),
                  "audit": await _blocking(store.audit_log, call["call_id"])})


async def _audio(request: web.Request) -> web.StreamResponse:
    """The call's recording (WAV, with byte ranges for seeking); listening is audited."""
    ctx = _context(request)
    call = await _find(request)
    if not ctx.recordings or not call.get("recording"):
        return _error(404, "this call has no recording")
    root = ctx.recordings.resolve()
    path = (root / call["recording"]).resolve()
    if not path.is_relative_to(root) or path.suffix != ".wav":  # a tampered log row
        return _error(404, "this call has no recording")
    if not path.is_file():
        return _error(404, "the recording file is missing")
    # Every request is audited, byte ranges included (with the range): auditing only the
    # first range of a playback would let ``bytes=1-`` fetch a recording unseen.
    await _blocking(ctx.store.audit, _session(request).user, "listen", call["call_id"],
                    request.headers.get("Range"))
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


# --- replay --------------------------------------------------------------------------------
async def _models(request: web.Request) -> web.StreamResponse:
    """The models this call may be replayed against (file names, newest first) and the
    one it was recorded with."""
    ctx = _context(request)
    call = await _find(request)
    paths = await _blocking(ctx.replayer.models, call.get("locale") or "zh")
    return _json({"models": [p.name for p in paths], "recorded": call.get("model")})


async def _replay(request: web.Request) -> web.StreamResponse:
    """JSON ``{"model": NAME}`` (a name from ``/models``; none: the latest model).
    The browser names a model, never a path: only the replayer's own files are loaded."""
    ctx = _context(request)
    call = await _find(request)
    try:
        body = await request.json() if request.can_read_body else {}
        name = (body or {}).get("model")
    except (ValueError, AttributeError):
        return _error(400, "send JSON like {\"model\": NAME}")
    model: Path | None = None
    if name:
        paths = await _blocking(ctx.replayer.models, call.get("locale") or "zh")
        model = next((p for p in paths if p.name == name), None)
        if model is None:
            return _error(400, f"no model {name!r} for this call's locale")
    await _blocking(ctx.store.audit, _session(request).user, "replay", call["call_id"])
    try:
        result = await ctx.replayer.replay(call["call_id"], model)
    except CallLogError as e:
        return _error(404, str(e))
    except IvrError as e:
        return _error(400, str(e))
    return _json(result)


# --- figures -------------------------------------------------------------------------------
async def _figures(request: web.Request) -> web.StreamResponse:
    """Live figures over the last ``hours`` (default 24), of the calls in scope (query
    ``locale``, ``transport``, ``queue``; ``test=1`` counts simulated and chat calls too):
    ivr/console/kpi.py."""
    ctx = _context(request)
    hours = _number(request, "hours", 24, 1 / 60, 24 * 366)
    since = time.time() - hours * 3600
    scope = kpi.Scope.of(request.query)
    found = await _blocking(kpi.read, ctx.store, since, scope)
    return _json({**figures(found["counts"], found["signals"], ctx.live_calls(), hours, since),
                  **found["figures"], "options": found["options"],
                  "scope": scope.__dict__, "timezone": zone.zone_name()})


def figures(counts: dict[str, Any], signals: dict[str, int], live: int, hours: float,
            since: float) -> dict[str, Any]:
    """Containment is self-served calls over ended calls (complete or cut off): a call
    still in progress has no outcome yet, so it is left out of both."""
    status, outcome = counts.get("status", {}), counts.get("outcome", {})
    calls = sum(status.values())
    ended = calls - status.get("live", 0)
    served = outcome.get("self_service", 0)
    return {
        "hours": hours, "since": since, "live_calls": live, "calls": calls, "ended": ended,
        "containment": round(served / ended, 4) if ended else None,
        "status": status,
        "outcome": {k: v for k, v in outcome.items() if k != "None"},
        "escalations_by_queue": counts.get("escalations_by_queue", {}),
        "escalations_by_reason": counts.get("escalations_by_reason", {}),
        "misroute_signals": dict(sorted(signals.items(), key=lambda kv: -kv[1])),
    }


TREND_DAYS = 30  # the Trends page's default period


async def _trends(request: web.Request) -> web.StreamResponse:
    """Per day (per week past a month) over the last ``days`` for one ``locale``:
    containment, misroute rate, estimated accuracy per intent and per dialect, the
    confusion matrix of labelled utterances and the promotions (ivr/trends.py)."""
    ctx = _context(request)
    days = _number(request, "days", TREND_DAYS, 1, 366)
    locale = request.query.get("locale") or "zh"
    until = time.time()
    log = Project(ctx.project_root).promotions_log if ctx.project_root else None
    return _json(await _blocking(trends, ctx.store, locale, until - days * 86400, until, log))


# --- trainers: the review queue and labels ----------------------------------------------
REVIEW_HOURS = 24 * 7  # the queue's default period, as `ivr review list --since 7d`


def _root(request: web.Request) -> Project:
    root = _context(request).project_root
    if root is None:
        raise _Refused(503, "the trainers' pages are not set up on this server")
    return Project(root)


def _project(request: web.Request, locale: Any) -> Project:
    """The project of a locale it has (the locale names files: never taken as given)."""
    project = _root(request)
    if locale not in project.locales():
        raise _Refused(400, f"no locale {locale!r}: one of {', '.join(project.locales())}")
    return project.with_locale(locale)


def _since(request: web.Request, hours: Any = None) -> float:
    """The start of the review period: ``hours`` back (the query's, or a JSON body's: a
    label resolves a cluster id against the queue the page listed), default a week."""
    hours = (_number(request, "hours", REVIEW_HOURS, 1 / 60, 24 * 3660) if hours is None
             else _finite("hours", hours if not isinstance(hours, str) else None, 1 / 60,
                          24 * 3660))
    return time.time() - hours * 3600


async def _body(request: web.Request, *required: str) -> dict[str, Any]:
    """The request's JSON object, with ``required`` non-empty string fields."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Refused(400, "send a JSON object")
    missing = [k for k in required if not isinstance(body.get(k), str) or not body[k].strip()]
    if missing:
        raise _Refused(400, f"missing {', '.join(missing)}")
    return body


async def _labelling(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A labelling function off the event loop; what it refuses becomes a 400."""
    try:
        return await _blocking(functools.partial(fn, *args, **kwargs))
    except CallLogError as e:
        raise _Refused(404, e.message, e.remedy) from None
    except IvrError as e:
        raise _Refused(400, e.message, e.remedy) from None


def _shown(project: Project, result: labelling.LabelResult) -> dict[str, Any]:
    """A label's result for the page: the file relative to the project (the server's own
    folders are none of the browser's business)."""
    return {**result.as_dict(),
            "file": str(result.file.relative_to(project.root)) if result.file else None}


async def _review(request: web.Request) -> web.StreamResponse:
    """The review queue of a locale (query ``locale``, ``hours``): clusters, most calls
    affected first."""
    project = _project(request, request.query.get("locale"))
    clusters = await _labelling(review.review_queue, _context(request).store, project.locale,
                                _since(request), locale_file=project.locale_file)
    return _json({"locale": project.locale, "locales": project.locales(),
                  "clusters": [c.summary() for c in clusters]})


async def _review_options(request: web.Request) -> web.StreamResponse:
    """What a label may say in a locale: the intents its training data has examples of
    (``label_intent`` accepts no other) and the dialect codes of its synonyms."""
    project = _project(request, request.query.get("locale"))
    examples = await _labelling(labelling.training_examples, project)
    dialects = await _labelling(labelling.dialect_codes, project) if (
        project.normalizer_files()) else []
    return _json({"locale": project.locale, "intents": sorted({e.intent for e in examples}),
                  "dialects": dialects, "routes": list(proposals.ROUTES)})


async def _cluster(request: web.Request) -> web.StreamResponse:
    """One cluster with its utterances in full (query ``locale``, ``hours``)."""
    project = _project(request, request.query.get("locale"))
    clusters = await _labelling(review.review_queue, _context(request).store, project.locale,
                                _since(request), locale_file=project.locale_file)
    try:
        cluster = review.find_cluster(clusters, request.match_info["cluster_id"])
    except review.ReviewError as e:
        return _error(404, e.message, e.remedy)
    return _json(cluster.as_dict())


async def _label(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "target": CLUSTER_ID or CALL_ID:TURN, "intent", "hours"}``: the
    utterances become examples of the intent; each one's outcome (added, exists, masked,
    conflict) comes back."""
    body = await _body(request, "locale", "target", "intent")
    project = _project(request, body["locale"])
    store = _context(request).store
    items, cluster = await _labelling(review.resolve, store, body["target"].strip(),
                                      project.locale, _since(request, body.get("hours")),
                                      locale_file=project.locale_file)
    result = await _labelling(labelling.label_intent, project, store, items,
                              body["intent"].strip(), _session(request).user, cluster)
    return _json({"cluster": cluster, **_shown(project, result)})


async def _asr_error(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "item": CALL_ID:TURN, "said", "intent"?}``: what the caller really
    said (with an intent, an example of it too)."""
    body = await _body(request, "locale", "item", "said")
    project = _project(request, body["locale"])
    store = _context(request).store
    item = await _labelling(review.find_item, store, body["item"].strip(), project.locale_file)
    result = await _labelling(labelling.mark_asr_error, project, store, item, body["said"],
                              _session(request).user, intent=body.get("intent") or None)
    return _json(_shown(project, result))


async def _synonym(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "key", "mandarin", "dialect", "target"?, "force"?, "hours"?}``: a
    dialect phrase (or, with dialect ``asr``, a near-homophone's term) for the normaliser;
    ``target`` (a cluster or CALL_ID:TURN) is labelled with it."""
    body = await _body(request, "locale", "key", "mandarin", "dialect")
    project = _project(request, body["locale"])
    store = _context(request).store
    items, cluster = [], None
    if isinstance(body.get("target"), str) and body["target"].strip():
        items, cluster = await _labelling(review.resolve, store, body["target"].strip(),
                                          project.locale, _since(request, body.get("hours")),
                                          locale_file=project.locale_file)
    result = await _labelling(labelling.add_synonym, project, store, body["key"],
                              body["mandarin"], body["dialect"].strip(),
                              _session(request).user, items, cluster,
                              force=body.get("force") is True)
    return _json({"file": str(result.file.relative_to(project.root)),
                  "dialect": result.dialect, "key": result.key, "mandarin": result.mandarin})


async def _proposals(request: web.Request) -> web.StreamResponse:
    """The locale's proposed intents (query ``locale``), newest first."""
    project = _project(request, request.query.get("locale"))
    found = await _labelling(proposals.read_proposals, project)
    return _json({"locale": project.locale,
                  "proposals": [p.as_dict() for p in reversed(found)]})


async def _propose(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "target": CLUSTER or CALL_ID:TURN, "intent", "label", "route",
    "hours"?}``: propose a new intent for the utterances (ivr/proposals.py), pending review;
    the live domain and training data are not touched."""
    body = await _body(request, "locale", "target", "intent", "label", "route")
    project = _project(request, body["locale"])
    store = _context(request).store
    items, cluster = await _labelling(review.resolve, store, body["target"].strip(),
                                      project.locale, _since(request, body.get("hours")),
                                      locale_file=project.locale_file)
    proposal, outcomes = await _labelling(
        proposals.propose, project, store, items, body["intent"], body["label"],
        body["route"].strip(), _session(request).user, cluster)
    return _json({"proposal": proposal.as_dict(), "cluster": cluster,
                  "outcomes": [o.__dict__ for o in outcomes]}, 201)


async def _decide(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "decision": "accept" or "reject", "note"?}`` on a pending proposal,
    by someone other than its author."""
    body = await _body(request, "locale", "decision")
    if body["decision"] not in ("accept", "reject"):
        return _error(400, "decision must be accept or reject")
    project = _project(request, body["locale"])
    note = body.get("note") if isinstance(body.get("note"), str) else ""
    try:
        proposal = await _blocking(functools.partial(
            proposals.decide, project, _context(request).store,
            request.match_info["proposal_id"], body["decision"] == "accept",
            _session(request).user, note))
    except proposals.NoSuchProposal as e:
        return _error(404, e.message)
    except proposals.ProposalError as e:  # decided already, or the author's own
        return _error(409, e.message)
    except IvrError as e:
        return _error(400, e.message, e.remedy)
    return _json({"proposal": proposal.as_dict()})


# --- trainers: training, comparing, promoting -----------------------------------------------
def _model_names(project: Project) -> dict[str, Any]:
    """The locale's model files (newest first), the live one and the newest (candidate)."""
    models = sorted(project.models_dir.glob(f"{project.locale}-*.tar.gz"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    try:
        live: str | None = project.live_model().name
    except ModelNotFoundError:
        live = None
    return {"models": [p.name for p in models], "live": live,
            "candidate": models[0].name if models and models[0].name != live else None}


async def _model_state(request: web.Request) -> web.StreamResponse:
    """Per locale: the model files, the live model (the pointer's), the one this server is
    serving, and the latest training run."""
    ctx = _context(request)
    project = _root(request)
    serving = ctx.live_models.services.engines if ctx.live_models else {}
    locales = {}
    for locale in project.locales():
        names = await _blocking(_model_names, project.with_locale(locale))
        engine = serving.get(locale)
        locales[locale] = {**names, "serving": engine.model_path.name if engine else None}
    status = ctx.trainer.status if ctx.trainer else None
    return _json({"locales": locales, "training": status.as_dict() if status else None,
                  "can_train": ctx.trainer is not None})


def _trainer(request: web.Request) -> Trainer:
    trainer = _context(request).trainer
    if trainer is None:
        raise _Refused(503, "training is not set up on this server")
    return trainer


async def _train(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "finetune"?}``: start ``ivr train`` in a child process (one run
    at a time); poll ``GET /console/api/train``."""
    body = await _body(request, "locale")
    project = _project(request, body["locale"])
    try:
        status = _trainer(request).start(project.locale, finetune=body.get("finetune") is True)
    except IvrError as e:
        return _error(409, e.message, e.remedy)
    await _blocking(_context(request).store.audit, _session(request).user, "train", None)
    return _json(status.as_dict())


async def _training(request: web.Request) -> web.StreamResponse:
    """The latest training run: state, phase, epoch of epochs, the model when done."""
    status = _trainer(request).status
    return _json(status.as_dict() if status else None)


def _candidate(project: Project, name: Any) -> Path:
    """A model of the locale by file name (default: the newest); never a path."""
    names = _model_names(project)
    if not names["models"]:
        raise _Refused(404, f"no {project.locale} model: train one first")
    name = name or names["models"][0]
    if name not in names["models"]:
        raise _Refused(400, f"no model {name!r} for {project.locale}")
    return project.models_dir / name


async def _compare(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "model"?}``: the candidate (default: the newest model) and the live
    model on the held-out set and on the labelled utterances, side by side with deltas.
    Both models load on their own threads; the calls' event loop keeps running."""
    body = await _body(request, "locale")
    project = _project(request, body["locale"])
    candidate = await _blocking(_candidate, project, body.get("model"))
    try:
        live = await _blocking(project.live_model)
        from ivr.evaluation import compare_models

        results = await compare_models(project, live, candidate)
    except IvrError as e:
        return _error(400, e.message, e.remedy)
    return _json({"locale": project.locale, "live": live.name, "candidate": candidate.name,
                  "sets": {name: r["comparison"] for name, r in results.items()}})


async def _promote(request: web.Request) -> web.StreamResponse:
    """JSON ``{"locale", "model"?, "force"?}``: gate the candidate on the held-out set (409
    when it is worse, unless ``force``), point the locale at it, and swap it into this
    server: new calls get it, calls in progress finish on the old model."""
    from ivr.promotion import PromotionRefused, promote

    body = await _body(request, "locale")
    project = _project(request, body["locale"])
    candidate = await _blocking(_candidate, project, body.get("model"))
    user = _session(request).user
    try:
        promotion = await promote(project, candidate, force=body.get("force") is True, by=user)
    except PromotionRefused as e:
        return _json({"error": e.message, "remedy": e.remedy and e.remedy.code,
                      "refused": True}, 409)
    except IvrError as e:
        return _error(400, e.message, e.remedy)
    await _blocking(_context(request).store.audit, user, "promote", None)
    live_models = _context(request).live_models
    swap = None
    if live_models and project.locale in live_models.services.engines:
        try:
            swap = await live_models.reload(project.locale)
        except IvrError as e:  # the old model keeps serving; the pointer is written
            swap = {"error": str(e)}
    return _json({"promotion": promotion.__dict__, "swap": swap})


# --- admins: the console's users -------------------------------------------------------------
_USER_NAME = re.compile(r"[\w.@-]{1,64}")


async def _users(request: web.Request) -> web.StreamResponse:
    """Console users: name, role, disabled, created, last login (never a password hash)."""
    return _json({"users": await _blocking(_context(request).store.list_users),
                  "roles": list(ROLES)})


async def _save_user(request: web.Request) -> web.StreamResponse:
    """JSON ``{"name", "role"?, "password"?, "disabled"?}``: create a user (role and password
    needed) or change the role, reset the password, disable or enable one. Audited; a new
    role, password or disabling ends the user's sessions; the last enabled admin cannot be
    demoted or disabled (409)."""
    body = await _body(request, "name")
    store = _context(request).store
    name, role, password, disabled = (body["name"].strip(), body.get("role"),
                                      body.get("password"), body.get("disabled"))
    # New names only: a user the CLI made with another name can still be changed.
    if not _USER_NAME.fullmatch(name) and await _blocking(store.user, name) is None:
        return _error(400, "a name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    if role is not None and role not in ROLES:
        return _error(400, f"role must be one of {', '.join(ROLES)}")
    if password is not None and (not isinstance(password, str) or len(password) < MIN_PASSWORD):
        return _error(400, f"a password needs at least {MIN_PASSWORD} characters")
    if disabled is not None and not isinstance(disabled, bool):
        return _error(400, "disabled must be true or false")
    if role is None and password is None and disabled is None:
        return _error(400, "nothing to change: give a role, a password or disabled")
    hashed = await _blocking(hash_password, password) if password is not None else None
    try:
        before, after = await _blocking(functools.partial(
            store.save_user, name, role=role, password_hash=hashed, disabled=disabled,
            keep_role=ADMIN, by=_session(request).user))
    except UserChangeRefused as e:
        return _error(409, str(e))
    except CallLogError as e:  # an unknown name without a role and a password
        return _error(400, str(e))
    return _json({"user": after, "created": before is None}, 201 if before is None else 200)


# --- ops: phone verification locks (ivr/dialogue/lockout.py) -----------------------------------
def _lockout(request: web.Request) -> Any:
    from ivr.dialogue.lockout import SqlLockout

    return SqlLockout(_context(request).store.engine)


async def _verification_locks(request: web.Request) -> web.StreamResponse:
    """Locked accounts (``?all=1``: every account with recent failures) and the policy.
    Accounts are customer ids or caller ids, never a card number."""
    everyone = request.query.get("all") in ("1", "true")

    def read() -> dict[str, Any]:
        lockout = _lockout(request)
        return {"locks": [lock.as_dict() for lock in lockout.locks(everyone)],
                "policy": {"max_failures": lockout.policy.max_failures,
                           "window_h": lockout.policy.window_h}}

    return _json(await _blocking(read))


async def _verification_unlock(request: web.Request) -> web.StreamResponse:
    """JSON ``{"account"}`` (as listed): clear its failures. Audited."""
    from ivr.dialogue.lockout import account_key

    account = account_key((await _body(request, "account"))["account"])
    cleared = await _blocking(lambda: _lockout(request).unlock(account))
    await _blocking(_context(request).store.audit, _session(request).user,
                    "verification_unlock", None, f"{account}: {cleared} failure(s)")
    return _json({"account": account, "cleared": cleared})


# --- the role x route table ----------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str] | None  # None: no login needed
    page: bool = False  # anonymous: redirect to the login page (else 401 JSON)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/console/login", _login_page, None),
    Route("GET", "/console/static/{name}", _static, None),
    Route("POST", "/console/api/login", _login, None),
    Route("GET", "/console", _index, READERS, page=True),
    Route("GET", "/console/", _index, READERS, page=True),
    Route("GET", "/console/api/me", _me, READERS),
    Route("POST", "/console/api/logout", _logout, READERS),
    Route("GET", "/console/api/calls", _calls, READERS),
    Route("GET", "/console/api/calls/{call_id}", _timeline, READERS),
    Route("GET", "/console/api/calls/{call_id}/audio", _audio, READERS),
    Route("GET", "/console/api/calls/{call_id}/models", _models, READERS),
    Route("POST", "/console/api/calls/{call_id}/replay", _replay, READERS),
    Route("GET", "/console/api/figures", _figures, READERS),
    Route("GET", "/console/api/trends", _trends, READERS),
    Route("GET", "/console/api/review", _review, TRAINERS),
    Route("GET", "/console/api/review/options", _review_options, TRAINERS),
    Route("GET", "/console/api/review/clusters/{cluster_id}", _cluster, TRAINERS),
    Route("POST", "/console/api/review/label", _label, TRAINERS),
    Route("POST", "/console/api/review/asr", _asr_error, TRAINERS),
    Route("POST", "/console/api/review/synonym", _synonym, TRAINERS),
    Route("GET", "/console/api/review/proposals", _proposals, TRAINERS),
    Route("POST", "/console/api/review/proposals", _propose, TRAINERS),
    Route("POST", "/console/api/review/proposals/{proposal_id}", _decide, TRAINERS),
    Route("GET", "/console/api/models", _model_state, TRAINERS),
    Route("GET", "/console/api/train", _training, TRAINERS),
    Route("POST", "/console/api/train", _train, TRAINERS),
    Route("POST", "/console/api/compare", _compare, TRAINERS),
    Route("POST", "/console/api/promote", _promote, TRAINERS),
    Route("GET", "/console/api/verification/locks", _verification_locks, OPERATORS),
    Route("POST", "/console/api/verification/unlock", _verification_unlock, OPERATORS),
    Route("GET", "/console/api/users", _users, ADMINS),
    Route("POST", "/console/api/users", _save_user, ADMINS),
)


def _guarded(route: Route) -> Handler:
    """The route's handler behind its login, role and CSRF checks."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            # (A response is a mapping, so an empty one is falsy: compare with None.)
            refused = await _check(request, route)
            response = refused if refused is not None else await route.handler(request)
        except _Refused as e:
            response = _error(e.status, str(e), e.remedy)
        if not response.prepared:
            response.headers.update({k: v for k, v in _HEADERS.items()
                                     if k not in response.headers})
        return response

    return handle


async def _check(request: web.Request, route: Route) -> web.StreamResponse | None:
    """None when the request may go on, else the refusal."""
    if route.roles is None:
        return None
    token = request.cookies.get(COOKIE)
    session = (await _blocking(request.app[SESSIONS].get, _context(request).store, token)
               if token else None)  # no cookie: no database round trip
    if session is None:
        if route.page:
            return web.Response(status=302, headers={"Location": "/console/login"})
        return _error(401, "log in first")
    if session.role not in route.roles:
        return _error(403, f"the {session.role} role may not use this")
    if route.method != "GET" and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        return _error(403, f"missing or wrong {CSRF_HEADER} header")
    request[_SESSION] = session
    return None


def add_console(app: web.Application) -> None:
    """Register the console's routes; handlers read ``app[CONSOLE]``, which the server
    sets once the call log is open."""
    app[SESSIONS] = Sessions()
    app[THROTTLE] = LoginThrottle()  # $IVR_TRUSTED_PROXIES: whose X-Forwarded-For counts
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _guarded(route))
