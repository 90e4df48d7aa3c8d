"""The Calls page: calls listed with filters, a call's timeline (every turn with how it was
heard, understood and answered, and who has opened it), its recording, and a replay of it
against a model to see what would change. Opening, listening and replaying are audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from ivr.calllog.store import CallFilter, CallLogError
from ivr.calllog.timeline import turn_view
from ivr.console.handling import (
    Refused,
    blocking,
    context,
    error_answer,
    json_answer,
    number,
    optional,
    session,
)
from ivr.core.events import to_json
from ivr.errors import IvrError


async def list_calls(request: web.Request) -> web.StreamResponse:
    """Calls, newest first. Query: outcome, queue, intent, caller, status, since/until
    (Unix seconds), limit, offset."""
    q = request.query
    f = CallFilter(
        since=optional(request, "since", 0, 1e12),
        until=optional(request, "until", 0, 1e12),
        **{k: q.get(k) or None for k in ("outcome", "queue", "intent", "caller", "status")},
        limit=int(number(request, "limit", 50, 1, 500, whole=True)),
        offset=int(number(request, "offset", 0, 0, 1e9, whole=True)))
    return json_answer({"calls": await blocking(context(request).store.list_calls, f)})


async def _find(request: web.Request) -> dict[str, Any]:
    try:
        return await blocking(context(request).store.find_call, request.match_info["call_id"])
    except CallLogError as e:
        raise Refused(404, str(e)) from None


async def timeline(request: web.Request) -> web.StreamResponse:
    """A call: its summary, its events, the per-turn view, and who has opened it."""
    ctx = context(request)
    call = await _find(request)
    events = await blocking(ctx.store.events, call["call_id"])
    await blocking(ctx.accounts.audit, session(request).user, "view", call["call_id"])
    return json_answer({"call": call, "events": [to_json(e) for e in events],
                        "turns": turn_view(events),
                        "audit": await blocking(ctx.accounts.audit_log, call["call_id"])})


async def audio(request: web.Request) -> web.StreamResponse:
    """The call's recording (WAV, with byte ranges for seeking); listening is audited."""
    ctx = context(request)
    call = await _find(request)
    if not ctx.recordings or not call.get("recording"):
        return error_answer(404, "this call has no recording")
    root = ctx.recordings.resolve()
    path = (root / call["recording"]).resolve()
    if not path.is_relative_to(root) or path.suffix != ".wav":  # a tampered log row
        return error_answer(404, "this call has no recording")
    if not path.is_file():
        return error_answer(404, "the recording file is missing")
    # Every request is audited, byte ranges included (with the range): auditing only the
    # first range of a playback would let ``bytes=1-`` fetch a recording unseen.
    await blocking(ctx.accounts.audit, session(request).user, "listen", call["call_id"],
                   request.headers.get("Range"))
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


# --- replay --------------------------------------------------------------------------------
# One replay at a time: the Replayer's bank stand-in holds one call's recorded
# verification answers while it replays, so two at once would mix them up.
async def replay_models(request: web.Request) -> web.StreamResponse:
    """The models this call may be replayed against (file names, newest first) and the
    one it was recorded with."""
    ctx = context(request)
    call = await _find(request)
    paths = await blocking(ctx.replayer.models, call.get("locale") or "zh")
    return json_answer({"models": [p.name for p in paths], "recorded": call.get("model")})


async def replay(request: web.Request) -> web.StreamResponse:
    """JSON ``{"model": NAME}`` (a name from ``/models``; none: the latest model).
    The browser names a model, never a path: only the replayer's own files are loaded."""
    ctx = context(request)
    call = await _find(request)
    try:
        body = await request.json() if request.can_read_body else {}
        name = (body or {}).get("model")
    except (ValueError, AttributeError):
        return error_answer(400, "send JSON like {\"model\": NAME}")
    model: Path | None = None
    if name:
        paths = await blocking(ctx.replayer.models, call.get("locale") or "zh")
        model = next((p for p in paths if p.name == name), None)
        if model is None:
            return error_answer(400, f"no model {name!r} for this call's locale")
    await blocking(ctx.accounts.audit, session(request).user, "replay", call["call_id"])
    try:
        result = await ctx.replayer.replay(call["call_id"], model)
    except CallLogError as e:
        return error_answer(404, str(e))
    except IvrError as e:
        return error_answer(400, str(e))
    return json_answer(result)
