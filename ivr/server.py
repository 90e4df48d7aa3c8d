"""``ivr serve``: one aiohttp process with everything in it.

Routes: ``/twilio`` (Twilio Media Streams), ``/ws`` (the plain WebSocket),
``POST /audiosocket/calls`` (register an Asterisk call's caller), ``/health``,
``/metrics``; Asterisk AudioSocket on its own TCP port. The dialogue models, speech models
and TTS load once, with the app (``cleanup_ctx``), and are shared by every call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ivr.calllog.recorder import CallLogSettings, CallRecorder, recover
from ivr.calllog.replay import Replayer
from ivr.calllog.store import CallStore
from ivr.console import CONSOLE, ConsoleContext, add_console
from ivr.errors import IvrError
from ivr.handoff import AcdWebhook
from ivr.project import Project
from ivr.voice.asr import SpeechModel, SpeechModelError, VoskRecognizer
from ivr.voice.events import CallerHangup
from ivr.voice.gateway import Gateway
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.transports import Limits, audiosocket, twilio, websocket
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import VoiceLocale, load_voice_locales

log = logging.getLogger(__name__)

GATEWAY = web.AppKey("gateway", Gateway)
CALL_LOG = web.AppKey("call_log", CallRecorder)
AUDIOSOCKET_ADDRESS = web.AppKey("audiosocket_address", tuple)


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
    end_of_speech_ms: int = 500
    call_log: CallLogSettings | None = None  # None: $IVR_CALL_LOG etc., else under var/
    limits: Limits = field(default_factory=Limits)
    voice: VoiceSettings = field(default_factory=VoiceSettings)


SETTINGS = web.AppKey("settings", ServerSettings)


@dataclass
class SpeechModels:
    """Each locale's Vosk model (absent where none is installed: keys only)."""

    models: dict[str, SpeechModel]
    executor: ThreadPoolExecutor

    def recognizer_for(self, locale: str) -> VoskRecognizer | None:
        model = self.models.get(locale)
        return VoskRecognizer(model, self.executor) if model else None


async def load_speech_models(locales: dict[str, VoiceLocale], end_of_speech_ms: int,
                             executor: ThreadPoolExecutor) -> SpeechModels:
    """Load every configured model; a missing one is a warning (that locale takes keys
    only), a grammar phrase the model cannot say is an error (the menu would never match)."""
    loop = asyncio.get_running_loop()
    models: dict[str, SpeechModel] = {}
    for name, voice in locales.items():
        if not voice.asr_model:
            continue
        try:
            model = await loop.run_in_executor(executor, SpeechModel.load, name,
                                               voice.asr_model, end_of_speech_ms)
        except SpeechModelError as e:
            log.warning("%s; %s calls will take keys only (see `ivr models`)", e, name)
            continue
        missing = model.missing_words(voice.all_phrases())
        if missing:
            raise IvrError(f"locales/{name}.yml: the {name} speech model has no word for "
                           f"{', '.join(missing)}; grammar phrases must use its vocabulary")
        models[name] = model
    return SpeechModels(models, executor)


async def load_services(project_root: Path, settings: ServerSettings) -> VoiceServices:
    """Everything calls share: dialogue engines, speech models, prompt audio."""
    from ivr.bank import DemoBank
    from ivr.dialogue.engine import DialogueEngine
    from ivr.knowledge import KnowledgeBase

    locales = load_voice_locales(project_root / "locales")
    projects = [Project(project_root, name) for name in locales]
    loaded = await asyncio.gather(*(  # each on its own dialogue thread
        DialogueEngine.load(p.latest_model(), DemoBank(), KnowledgeBase.load(p.knowledge))
        for p in projects))
    engines = {p.locale: engine for p, engine in zip(projects, loaded, strict=True)}
    if settings.default_locale not in engines:
        raise IvrError(f"default locale {settings.default_locale!r} has no locales/*.yml")
    executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="asr")
    speech = await load_speech_models(locales, settings.end_of_speech_ms, executor)
    prompts = PromptAudio(EspeakTts(), recordings=project_root / "prompts",
                          cache_dir=project_root / ".cache" / "prompts")
    return VoiceServices(engines=engines, locales=locales, prompts=prompts,
                         recognizer_for=speech.recognizer_for,
                         default_locale=settings.default_locale, settings=settings.voice)


def build_app(settings: ServerSettings, services: VoiceServices | None = None,
              project_root: Path | None = None) -> web.Application:
    """The app; ``services`` may be given ready-made (tests share loaded models)."""
    app = web.Application(client_max_size=settings.limits.max_message_bytes)
    app[SETTINGS] = settings

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        root = project_root or Project.discover().root
        loaded = services or await load_services(root, settings)
        acd = AcdWebhook(settings.acd_url) if settings.acd_url else None
        recorder = await open_call_log(
            settings.call_log or CallLogSettings.from_env(root, f":{settings.port}"))
        gateway = Gateway(loaded, settings.limits, acd)
        loaded.observers.append(recorder.record)
        loaded.open_recording = recorder.open_recording
        app[GATEWAY] = gateway
        app[CALL_LOG] = recorder
        replayer = Replayer(recorder.store, root, loaded.locales, recorder.recordings,
                            loaded.recognizer_for)
        app[CONSOLE] = ConsoleContext(recorder.store, recorder.recordings, replayer,
                                      lambda: len(gateway.live))
        watcher = asyncio.create_task(gateway.metrics.watch_event_loop())
        server = None
        if settings.audiosocket_port >= 0:
            server = await asyncio.start_server(
                functools.partial(_audiosocket_call, gateway), settings.audiosocket_host,
                settings.audiosocket_port, limit=settings.limits.max_message_bytes + 3)
            app[AUDIOSOCKET_ADDRESS] = tuple(server.sockets[0].getsockname()[:2])
        yield
        watcher.cancel()
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
        replayer.close()
        await asyncio.get_running_loop().run_in_executor(None, recorder.close)
        recorder.store.close()
        if not services:
            for engine in loaded.engines.values():
                engine.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/twilio", _twilio)
    app.router.add_get("/ws", _websocket)
    app.router.add_post("/audiosocket/calls", _register_audiosocket_call)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    add_console(app)
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


async def _health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    services = gateway.services
    locales = {name: {"dialogue_model": str(engine.model_path.name),
                      "speech": services.recognizer_for(name) is not None}
               for name, engine in services.engines.items()}
    recorder = request.app[CALL_LOG]
    call_log = {"ok": recorder.healthy, "pending": recorder.pending,
                "written": recorder.written, "dropped": recorder.dropped}
    return web.json_response({"status": "ok" if recorder.healthy else "degraded",
                              "calls_live": len(gateway.live), "locales": locales,
                              "call_log": call_log})


async def _metrics(request: web.Request) -> web.Response:
    if not websocket.authorized(request, request.app[SETTINGS].ws_token):
        return web.Response(status=401)
    body = generate_latest(request.app[GATEWAY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(settings: ServerSettings, project_root: Path) -> None:
    """Run until SIGINT or SIGTERM, then end live calls and stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = build_app(settings, project_root=project_root)
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    where = app.get(AUDIOSOCKET_ADDRESS)
    print(f"ivr serve: http://{settings.host}:{settings.port} (/twilio, /ws, /health, /metrics)"
          + (f"; AudioSocket on {where[0]}:{where[1]}" if where else ""), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
