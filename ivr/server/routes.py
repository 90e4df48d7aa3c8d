"""``ivr serve``'s own HTTP routes: the calls' WebSockets (Twilio, plain), Asterisk's call
registration (and its AudioSocket connections), the agent desktop's feedback, the model
reload, ``/health`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ivr.calllog.store import AmbiguousCall, CallLogError, CallNotFound
from ivr.core.events import AgentFeedback
from ivr.dialogue.routing import QUEUES
from ivr.errors import IvrError
from ivr.server.state import CALL_LOG, GATEWAY, LIVE_MODELS, SETTINGS, WARM_UP
from ivr.telephony import audiosocket, twilio, websocket
from ivr.voice.gateway import Gateway

log = logging.getLogger(__name__)


async def audiosocket_call(gateway: Gateway, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    try:
        await audiosocket.handle(reader, writer, gateway, gateway.registered)
    except Exception:
        log.exception("audiosocket call failed")
        writer.close()


async def _twilio(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    return await twilio.handle(request, request.app[GATEWAY], settings.twilio_auth_token,
                               settings.public_url)


async def _websocket(request: web.Request) -> web.StreamResponse:
    return await websocket.handle(request, request.app[GATEWAY], request.app[SETTINGS].ws_token)


async def _register_audiosocket_call(request: web.Request) -> web.Response:
    """The dialplan tells us who is calling before ``AudioSocket()`` connects."""
    if not websocket.authorized(request, request.app[SETTINGS].ws_token):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    try:
        body = await request.json()
        call_uuid = str(uuid.UUID(str(body["uuid"])))
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": "need JSON with a uuid"}, status=400)
    info = {"caller": str(body.get("caller") or ""), "locale": body.get("locale")}
    request.app[GATEWAY].register(call_uuid, info)
    return web.json_response({"registered": call_uuid})


FEEDBACK_KINDS = ("requeued", "wrong_queue")


async def _acd_feedback(request: web.Request) -> web.Response:
    """The agent desktop says a call was in the wrong queue ("requeued" from one queue to
    another, or "wrong_queue"): a misroute signal on the call, and, where it names the
    right queue, a label that replay reports judge new models by."""
    settings = request.app[SETTINGS]
    if not websocket.authorized(request, settings.acd_token or settings.ws_token):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    try:
        body = await request.json()
        call_id, kind = str(body["call_id"]), str(body["kind"])
        if kind not in FEEDBACK_KINDS:
            raise ValueError(kind)
        to_queue = body.get("to_queue")
        if to_queue is not None and to_queue not in QUEUES:
            raise ValueError(to_queue)
    except (ValueError, KeyError, TypeError):
        return web.json_response(
            {"error": f"need JSON with call_id, kind ({' or '.join(FEEDBACK_KINDS)}), "
                      f"optional from_queue, to_queue (one of {', '.join(QUEUES)}), agent"},
            status=400)
    store = request.app[CALL_LOG].store
    agent = str(body.get("agent") or "acd")
    try:
        # A whole id (the engine's, or the external one if only one call has it), never a
        # prefix: what is stored must belong to exactly the call the desktop meant.
        call_id = (await asyncio.to_thread(store.find_call, call_id, True))["call_id"]
        feedback = AgentFeedback(call_id=call_id, kind=kind, from_queue=body.get("from_queue"),
                                 to_queue=to_queue, agent=agent)
        await asyncio.to_thread(store.append_event, feedback)
        if to_queue:
            await asyncio.to_thread(store.add_label, call_id, agent, None, to_queue,
                                    f"agent desktop: {kind}")
    except CallNotFound as e:
        return web.json_response({"error": str(e)}, status=404)
    except AmbiguousCall as e:
        return web.json_response({"error": str(e)}, status=409)
    except CallLogError as e:
        return web.json_response({"error": str(e)}, status=503)
    return web.json_response({"recorded": call_id})


async def _health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    services = gateway.services
    locales = {name: {"dialogue_model": str(engine.model_path.name),
                      "speech": services.recognizer_for(name) is not None}
               for name, engine in services.engines.items()}
    recorder = request.app[CALL_LOG]
    call_log = {"ok": recorder.healthy, "pending": recorder.pending,
                "written": recorder.written, "dropped": recorder.dropped,
                "recordings_cut": recorder.recordings_cut,
                "dead_letters": recorder.dead_letters}
    # Draining answers 503 so a load balancer sends new calls to other instances.
    status = "draining" if gateway.draining else "ok" if recorder.healthy else "degraded"
    return web.json_response({"status": status, "calls_live": len(gateway.live),
                              "calls_taken": gateway.taken, "max_calls": gateway.max_calls,
                              "locales": locales, "call_log": call_log,
                              "warm_up": request.app.get(WARM_UP)},
                             status=503 if gateway.draining else 200)


async def _reload_models(request: web.Request) -> web.Response:
    """Swap in the live pointer's model: JSON ``{"locale": "ko"}`` (none: every locale).
    Answers once the new model serves; calls in progress finish on the old one."""
    if not websocket.authorized(request, request.app[SETTINGS].ws_token):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    live = request.app[LIVE_MODELS]
    try:
        body = await request.json() if request.can_read_body else {}
        locale = (body or {}).get("locale")
    except (ValueError, AttributeError):
        return web.json_response({"error": "send JSON like {\"locale\": \"ko\"}"}, status=400)
    if locale is not None and locale not in live.services.engines:
        return web.json_response({"error": f"no locale {locale!r}"}, status=400)
    try:
        done = [await live.reload(locale)] if locale else await live.reload_all()
    except IvrError as e:
        return web.json_response({"error": str(e)}, status=409)
    return web.json_response({"reloaded": done})


async def _metrics(request: web.Request) -> web.Response:
    if not websocket.authorized(request, request.app[SETTINGS].ws_token):
        return web.Response(status=401)
    # The process collector reads /proc: off the event loop, as every file read is.
    body = await asyncio.to_thread(generate_latest, request.app[GATEWAY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    """The server's own routes (the telephony's and the console's are added beside them)."""
    app.router.add_get("/twilio", _twilio)
    app.router.add_get("/ws", _websocket)
    app.router.add_post("/audiosocket/calls", _register_audiosocket_call)
    app.router.add_post("/acd/feedback", _acd_feedback)
    app.router.add_post("/admin/models/reload", _reload_models)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
