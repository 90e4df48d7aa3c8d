"""Every console route and the roles allowed on it, in one table (``ROUTES``; docs/console.md
prints the same table), and the login, role and CSRF check each handler runs behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ivr.console import (
    SESSIONS,
    calls,
    figures,
    login,
    models,
    pages,
    reviewing,
    users,
    verification,
)
from ivr.console.auth import ADMIN, COOKIE, CSRF_HEADER, OPS, TRAINER
from ivr.console.handling import SESSION, Refused, blocking, context, error_answer

# Admins may do everything the others may, and manage the console's users.
READERS = frozenset({OPS, TRAINER, ADMIN})  # read calls, audio and figures, run replays
TRAINERS = frozenset({TRAINER, ADMIN})
ADMINS = frozenset({ADMIN})
OPERATORS = frozenset({OPS, ADMIN})  # see and clear phone verification locks

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEADERS = {
    # Only this server's own scripts, styles and media: the page has no inline script,
    # so an injected <script> cannot run.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # call data must not linger in shared caches
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str] | None  # None: no login needed
    page: bool = False  # anonymous: redirect to the login page (else 401 JSON)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/console/login", pages.login_page, None),
    Route("GET", "/console/static/{name}", pages.static, None),
    Route("POST", "/console/api/login", login.login, None),
    Route("GET", "/console", pages.index, READERS, page=True),
    Route("GET", "/console/", pages.index, READERS, page=True),
    Route("GET", "/console/api/me", login.me, READERS),
    Route("POST", "/console/api/logout", login.logout, READERS),
    Route("GET", "/console/api/calls", calls.list_calls, READERS),
    Route("GET", "/console/api/calls/{call_id}", calls.timeline, READERS),
    Route("GET", "/console/api/calls/{call_id}/audio", calls.audio, READERS),
    Route("GET", "/console/api/calls/{call_id}/models", calls.replay_models, READERS),
    Route("POST", "/console/api/calls/{call_id}/replay", calls.replay, READERS),
    Route("GET", "/console/api/figures", figures.live_figures, READERS),
    Route("GET", "/console/api/trends", figures.trend_lines, READERS),
    Route("GET", "/console/api/review", reviewing.review_queue, TRAINERS),
    Route("GET", "/console/api/review/options", reviewing.review_options, TRAINERS),
    Route("GET", "/console/api/review/clusters/{cluster_id}", reviewing.one_cluster, TRAINERS),
    Route("POST", "/console/api/review/label", reviewing.label_intent, TRAINERS),
    Route("POST", "/console/api/review/asr", reviewing.asr_error, TRAINERS),
    Route("POST", "/console/api/review/synonym", reviewing.synonym, TRAINERS),
    Route("GET", "/console/api/review/proposals", reviewing.list_proposals, TRAINERS),
    Route("POST", "/console/api/review/proposals", reviewing.propose_intent, TRAINERS),
    Route("POST", "/console/api/review/proposals/{proposal_id}", reviewing.decide_proposal,
          TRAINERS),
    Route("GET", "/console/api/models", models.model_state, TRAINERS),
    Route("GET", "/console/api/train", models.training_status, TRAINERS),
    Route("POST", "/console/api/train", models.start_training, TRAINERS),
    Route("POST", "/console/api/compare", models.compare, TRAINERS),
    Route("POST", "/console/api/promote", models.promote_model, TRAINERS),
    Route("GET", "/console/api/verification/locks", verification.locks, OPERATORS),
    Route("POST", "/console/api/verification/unlock", verification.unlock, OPERATORS),
    Route("GET", "/console/api/users", users.list_users, ADMINS),
    Route("POST", "/console/api/users", users.save_user, ADMINS),
)


def guarded(route: Route) -> Handler:
    """The route's handler behind its login, role and CSRF checks."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            # (A response is a mapping, so an empty one is falsy: compare with None.)
            refused = await _check(request, route)
            response = refused if refused is not None else await route.handler(request)
        except Refused as e:
            response = error_answer(e.status, str(e), e.remedy)
        if not response.prepared:
            response.headers.update({k: v for k, v in HEADERS.items()
                                     if k not in response.headers})
        return response

    return handle


async def _check(request: web.Request, route: Route) -> web.StreamResponse | None:
    """None when the request may go on, else the refusal."""
    if route.roles is None:
        return None
    token = request.cookies.get(COOKIE)
    session = (await blocking(request.app[SESSIONS].get, context(request).accounts, token)
               if token else None)  # no cookie: no database round trip
    if session is None:
        if route.page:
            return web.Response(status=302, headers={"Location": "/console/login"})
        return error_answer(401, "log in first")
    if session.role not in route.roles:
        return error_answer(403, f"the {session.role} role may not use this")
    if route.method != "GET" and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
        return error_answer(403, f"missing or wrong {CSRF_HEADER} header")
    request[SESSION] = session
    return None
