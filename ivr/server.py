"""``ivr serve``: one aiohttp process with everything in it.

Routes: ``/twilio`` (Twilio Media Streams), ``/ws`` (the plain WebSocket),
``POST /audiosocket/calls`` (register an Asterisk call's caller), the telephony's next
step once the engine is done (``/twilio/voice``, ``/twilio/after-stream``,
``/audiosocket/result``: ivr/telephony.py), ``/health``,
``/metrics``, ``POST /admin/models/reload`` (swap in the promoted model); Asterisk
AudioSocket on its own TCP port. The dialogue models, speech models and TTS load once, with
the app (``cleanup_ctx``), and are shared by every call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ivr.calllog.recorder import CallLogSettings, CallRecorder, recover
from ivr.calllog.replay import Replayer
from ivr.calllog.store import AmbiguousCall, CallLogError, CallNotFound, CallStore
from ivr.console import CONSOLE, THROTTLE, ConsoleContext, add_console
from ivr.console.throttle import LoginThrottle, parse_networks
from ivr.dialogue.lockout import SqlLockout
from ivr.errors import IvrError, shown
from ivr.handoff import AcdWebhook
from ivr.live_models import LiveModels, load_engine
from ivr.project import Project
from ivr.routing import QUEUES
from ivr.telephony import HANDOFF, Handoff, QueueTargets, add_handoff_routes
from ivr.training import Trainer
from ivr.voice.asr import SpeechModel, SpeechModelError, VoskRecognizer
from ivr.voice.decoders import DecoderPool
from ivr.voice.events import CallerHangup
from ivr.voice.gateway import Gateway
from ivr.voice.metrics import show_call_ends
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.transports import Limits, audiosocket, twilio, websocket
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import VoiceLocale, load_voice_locales
from ivr.voice.warmup import warm_up
from ivr.webguard import ConnectionGuard, GuardedSite, HostPolicy, request_guard

log = logging.getLogger(__name__)

GATEWAY = web.AppKey("gateway", Gateway)
CALL_LOG = web.AppKey("call_log", CallRecorder)
LIVE_MODELS = web.AppKey("live_models", LiveModels)
AUDIOSOCKET_ADDRESS = web.AppKey("audiosocket_address", tuple)
WARM_UP = web.AppKey("warm_up", dict)  # what was warmed before serving (ivr/voice/warmup.py)


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    audiosocket_host: str = "127.0.0.1"  # the interface Asterisk reaches us on
    audiosocket_port: int = 9092  # 0: any free port (tests); -1: no AudioSocket
    default_locale: str = "zh"
    twilio_auth_token: str | None = field(
        default_factory=lambda: os.environ.get("IVR_TWILIO_AUTH_TOKEN"))
    public_url: str | None = field(default_factory=lambda: os.environ.get("IVR_PUBLIC_URL"))
    ws_token: str | None = field(default_factory=lambda: os.environ.get("IVR_WS_TOKEN"))
    acd_url: str | None = field(default_factory=lambda: os.environ.get("IVR_ACD_URL"))
    # Where Twilio puts escalated callers through, per queue (ivr/telephony.py)
    queue_numbers: str | None = field(
        default_factory=lambda: os.environ.get("IVR_QUEUE_NUMBERS"))
    pointer_poll_s: float = 3.0  # how often models/live.yml is checked for a promotion
    # what the agent desktop presents on /acd/feedback (default: $IVR_WS_TOKEN)
    acd_token: str | None = field(default_factory=lambda: os.environ.get("IVR_ACD_TOKEN"))
    end_of_speech_ms: int = 500
    # Calls taken at once: $IVR_MAX_CALLS, else the capacity measured on this machine
    # (var/capacity.json, bench/bench_gateway.py --capacity); past it: the busy prompt.
    max_calls: int | None = field(default_factory=lambda: _env_int("IVR_MAX_CALLS"))
    drain_s: float = field(default_factory=lambda: float(os.environ.get("IVR_DRAIN_S", 300)))
    # Where the calls' conversations live: Redis for several instances (docs/scaling.md);
    # None: in this process.
    redis_url: str | None = field(default_factory=lambda: os.environ.get("IVR_REDIS_URL"))
    call_log: CallLogSettings | None = None  # None: $IVR_CALL_LOG etc., else under var/
    limits: Limits = field(default_factory=Limits)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    # HTTP hardening (ivr/webguard.py): host names the Host header may give beyond loopback,
    # the bind host and IVR_PUBLIC_URL's; proxies whose X-Forwarded-For is believed (and
    # whose connections are not capped); how long a request head may take; connections
    # one source may hold open (0: no cap).
    allowed_hosts: str | None = field(
        default_factory=lambda: os.environ.get("IVR_ALLOWED_HOSTS"))
    trusted_proxies: str | None = field(
        default_factory=lambda: os.environ.get("IVR_TRUSTED_PROXIES"))
    header_timeout_s: float = field(
        default_factory=lambda: float(os.environ.get("IVR_HEADER_TIMEOUT_S") or 10))
    max_connections_per_source: int = field(
        default_factory=lambda: _env_int("IVR_MAX_CONNECTIONS_PER_SOURCE") if os.environ.get(
            "IVR_MAX_CONNECTIONS_PER_SOURCE") else 64)


SETTINGS = web.AppKey("settings", ServerSettings)
CAPACITY_FILE = Path("var") / "capacity.json"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        raise IvrError(f"${name} must be a whole number, not {value!r}") from None


def measured_capacity(root: Path) -> int | None:
    """The calls this machine serves in real time, as bench/bench_gateway.py measured and
    wrote it (``var/capacity.json``); None when never measured."""
    path = root / CAPACITY_FILE
    if not path.is_file():
        return None
    try:
        calls = json.loads(path.read_text(encoding="utf-8"))["calls"]
        return int(calls) if int(calls) > 0 else None
    except (ValueError, KeyError, TypeError):
        raise IvrError(f"{shown(path)}: not a capacity measurement (rerun bench/bench_gateway.py "
                       "--capacity --write)") from None


@dataclass
class SpeechModels:
    """Each locale's Vosk model (absent where none is installed: keys only), decoding in
    worker processes so that a native crash costs one worker, not the engine."""

    models: dict[str, SpeechModel]
    decoders: DecoderPool | None  # None: no model installed

    def recognizer_for(self, locale: str) -> VoskRecognizer | None:
        model = self.models.get(locale)
        if model is None or self.decoders is None:
            return None
        return VoskRecognizer(model, decoder=self.decoders.decoder(locale))


def asr_workers() -> int:
    """Decoder worker processes: one per core by default (decoding is CPU-bound, and a
    crash costs 1/N of the calls); each holds its own copy of the models
    ($IVR_ASR_WORKERS trades them)."""
    return _env_int("IVR_ASR_WORKERS") or os.cpu_count() or 2


async def load_speech_models(locales: dict[str, VoiceLocale],
                             end_of_speech_ms: int) -> SpeechModels:
    """Load every configured model; a missing one is a warning (that locale takes keys
    only), a grammar phrase the model cannot say is an error (the menu would never match)."""
    loop = asyncio.get_running_loop()
    models: dict[str, SpeechModel] = {}
    for name, voice in locales.items():
        if not voice.asr_model:
            continue
        try:
            model = await loop.run_in_executor(None, SpeechModel.load, name,
                                               voice.asr_model, end_of_speech_ms)
        except SpeechModelError as e:
            log.warning("%s; %s calls will take keys only (see `ivr models`)", e, name)
            continue
        missing = model.missing_words(voice.all_phrases())
        if missing:
            raise IvrError(f"locales/{name}.yml: the {name} speech model has no word for "
                           f"{', '.join(missing)}; grammar phrases must use its vocabulary")
        models[name] = model
    pool = DecoderPool(models, asr_workers()) if models else None
    return SpeechModels(models, pool)


async def load_services(project_root: Path, settings: ServerSettings) -> VoiceServices:
    """Everything calls share: dialogue engines, speech models, prompt audio."""
    locales = load_voice_locales(project_root / "locales")
    projects = [Project(project_root, name) for name in locales]
    loaded = await asyncio.gather(  # each on its own thread
        *(load_engine(p, conversations=settings.redis_url) for p in projects))
    engines = {p.locale: engine for p, engine in zip(projects, loaded, strict=True)}
    if settings.default_locale not in engines:
        raise IvrError(f"default locale {settings.default_locale!r} has no locales/*.yml")
    speech = await load_speech_models(locales, settings.end_of_speech_ms)
    prompts = PromptAudio(EspeakTts(), recordings=project_root / "prompts",
                          cache_dir=project_root / ".cache" / "prompts")
    return VoiceServices(engines=engines, locales=locales, prompts=prompts,
                         recognizer_for=speech.recognizer_for,
                         default_locale=settings.default_locale, settings=settings.voice)


def build_app(settings: ServerSettings, services: VoiceServices | None = None,
              project_root: Path | None = None, warm: bool | None = None) -> web.Application:
    """The app; ``services`` may be given ready-made (tests share loaded models). ``warm``
    (default: when the app loads its own services) warms dialogue, prompts and decoders
    before the app starts, so the server listens, and ``/health`` answers, only once warm
    (ivr/voice/warmup.py)."""
    # Host, Origin and Content-Type are checked before any route (ivr/webguard.py).
    hosts = HostPolicy.for_server(settings.host, settings.public_url, settings.allowed_hosts)
    app = web.Application(client_max_size=settings.limits.max_message_bytes,
                          middlewares=[request_guard(hosts)])
    app[SETTINGS] = settings
    targets = QueueTargets.parse(settings.queue_numbers)  # a bad one stops `ivr serve` here

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        root = project_root or Project.discover().root
        loaded = services or await load_services(root, settings)
        acd = AcdWebhook(settings.acd_url) if settings.acd_url else None
        recorder = await open_call_log(
            settings.call_log or CallLogSettings.from_env(root, f":{settings.port}"))
        # Failed verifications count in the call log's database: every instance on it
        # shares the count (SPEC rule 3). Engines a test lends get theirs back at the end.
        lockout = await asyncio.get_running_loop().run_in_executor(
            None, SqlLockout, recorder.store.engine)
        lent_lockouts = {engine: engine.lockout for engine in loaded.engines.values()}
        for engine in lent_lockouts:
            engine.lockout = lockout
        max_calls = settings.max_calls if settings.max_calls is not None else (
            measured_capacity(root))
        max_calls = max_calls or None  # 0: no limit (the capacity benchmark's own server)
        if max_calls is None:
            log.warning("no call limit: capacity never measured here (run bench/"
                        "bench_gateway.py --capacity --write, or set IVR_MAX_CALLS)")
        gateway = Gateway(loaded, settings.limits, acd, max_calls=max_calls)
        gateway.metrics.watch_call_log(recorder)
        loaded.observers.append(recorder.record)
        loaded.open_recording = recorder.open_recording
        loaded.log_settled = recorder.settled
        app[GATEWAY] = gateway
        app[CALL_LOG] = recorder
        app[HANDOFF] = Handoff(gateway, recorder.store, targets, settings.default_locale,
                               settings.twilio_auth_token, settings.public_url,
                               settings.ws_token)
        replayer = Replayer(recorder.store, root, loaded.locales, recorder.recordings,
                            loaded.recognizer_for)
        app[LIVE_MODELS] = live_models = LiveModels(root, gateway, owned=not services)
        trainer = Trainer(root)
        app[CONSOLE] = ConsoleContext(recorder.store, recorder.recordings, replayer,
                                      lambda: len(gateway.live), project_root=root,
                                      trainer=trainer, live_models=live_models)
        if services is None if warm is None else warm:  # before any port takes a call
            app[WARM_UP] = await warm_up(loaded, asr_workers())
            log.info("warmed up: %s", app[WARM_UP])
        watcher = asyncio.create_task(gateway.metrics.watch_event_loop())
        pointer_watcher = asyncio.create_task(live_models.watch(settings.pointer_poll_s))
        server = None
        if settings.audiosocket_port >= 0:
            server = await asyncio.start_server(
                functools.partial(_audiosocket_call, gateway), settings.audiosocket_host,
                settings.audiosocket_port, limit=settings.limits.max_message_bytes + 3)
            app[AUDIOSOCKET_ADDRESS] = tuple(server.sockets[0].getsockname()[:2])
        yield
        watcher.cancel()
        pointer_watcher.cancel()
        await trainer.close()
        if server:
            server.close()
            await server.wait_closed()
        for session in list(gateway.live.values()):
            session.push(CallerHangup("shutdown"))
        for _ in range(100):  # let them end (and be logged) before the log closes
            if not gateway.live:
                break
            await asyncio.sleep(0.05)
        for observer in (recorder.record, gateway.metrics.observe):
            loaded.observers.remove(observer)  # tests share services between apps
        loaded.log_settled = VoiceServices.log_settled
        for engine, before in lent_lockouts.items():
            engine.lockout = before
        replayer.close()
        await asyncio.get_running_loop().run_in_executor(None, recorder.close)
        recorder.store.close()
        live_models.close()  # the engines it owns: all of them unless services were lent

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/twilio", _twilio)
    app.router.add_get("/ws", _websocket)
    app.router.add_post("/audiosocket/calls", _register_audiosocket_call)
    app.router.add_post("/acd/feedback", _acd_feedback)
    app.router.add_post("/admin/models/reload", _reload_models)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    add_handoff_routes(app)
    add_console(app)
    app[THROTTLE] = LoginThrottle(trusted_proxies=settings.trusted_proxies or "")
    return app


async def open_call_log(settings: CallLogSettings) -> CallRecorder:
    """The call log's store and writer; calls this instance left live when it last died
    are marked incomplete first."""
    loop = asyncio.get_running_loop()
    store = await loop.run_in_executor(None, CallStore, settings.url)
    await loop.run_in_executor(None, recover, store, settings.instance, settings.recordings)
    return CallRecorder(store, settings.instance, settings.recordings)


async def _audiosocket_call(gateway: Gateway, reader: asyncio.StreamReader,
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
    feedback = {"kind": kind, "from_queue": body.get("from_queue"), "to_queue": to_queue,
                "agent": str(body.get("agent") or "acd")}
    try:
        # A whole id (the engine's, or the external one if only one call has it), never a
        # prefix: what is stored must belong to exactly the call the desktop meant.
        call_id = (await asyncio.to_thread(store.find_call, call_id, True))["call_id"]
        await asyncio.to_thread(store.append_event, call_id, "feedback", feedback)
        if to_queue:
            await asyncio.to_thread(store.add_label, call_id, feedback["agent"], None,
                                    to_queue, f"agent desktop: {kind}")
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
    body = generate_latest(request.app[GATEWAY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_server(app: web.Application, settings: ServerSettings
                       ) -> tuple[web.AppRunner, GuardedSite]:
    """Listen on ``settings.host:port`` with the connection limits: a request head must
    be complete within ``header_timeout_s`` (the first on a connection: the site's guard;
    later ones: aiohttp's keep-alive timeout), and a source holds at most
    ``max_connections_per_source`` connections. aiohttp has no header timeout of its own."""
    runner = web.AppRunner(app, shutdown_timeout=5, keepalive_timeout=settings.header_timeout_s)
    await runner.setup()
    guard = ConnectionGuard(settings.header_timeout_s, settings.max_connections_per_source,
                            exempt=parse_networks(settings.trusted_proxies))
    site = GuardedSite(runner, settings.host, settings.port, guard)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


async def serve(settings: ServerSettings, project_root: Path) -> None:
    """Run until SIGINT or SIGTERM, then drain: take no new call, let live ones finish
    (up to ``drain_s``; a second signal stops at once), end the rest and stop cleanly."""
    signals: list[asyncio.Event] = [asyncio.Event(), asyncio.Event()]
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        next((e for e in signals if not e.is_set()), signals[-1]).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    show_call_ends()
    app = build_app(settings, project_root=project_root)
    runner, _ = await start_server(app, settings)
    where = app.get(AUDIOSOCKET_ADDRESS)
    print(f"ivr serve: http://{settings.host}:{settings.port} (/twilio, /ws, /health, /metrics)"
          + (f"; AudioSocket on {where[0]}:{where[1]}" if where else ""), flush=True)
    try:
        await signals[0].wait()
        gateway = app[GATEWAY]
        print(f"ivr serve: draining {len(gateway.live)} live calls (up to "
              f"{settings.drain_s:g} s; signal again to stop now)", flush=True)
        drained = asyncio.create_task(gateway.drain(settings.drain_s))
        await asyncio.wait([drained, asyncio.create_task(signals[1].wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        left = len(gateway.live)
        print(f"ivr serve: stopping ({left} calls still live are ended)" if left else
              "ivr serve: drained, stopping", flush=True)
    finally:
        await runner.cleanup()
