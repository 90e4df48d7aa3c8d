"""``ivr serve``'s app: its routes, and what every call shares (dialogue engines, speech
models, prompt audio, the call log, the console's context), loaded once with the app
(``cleanup_ctx``)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from ivr.calllog.recorder import CallLogSettings, CallRecorder, recover
from ivr.calllog.replay import Replayer
from ivr.calllog.store import CallStore
from ivr.console import CONSOLE, THROTTLE, ConsoleContext, add_console
from ivr.console.throttle import LoginThrottle
from ivr.dialogue.engine_factory import load_speech_models
from ivr.dialogue.handoff import AcdWebhook
from ivr.dialogue.lockout import SqlLockout
from ivr.errors import IvrError
from ivr.project import Project
from ivr.server.live_models import LiveModels, load_engine
from ivr.server.routes import add_routes, audiosocket_call
from ivr.server.settings import ServerSettings, asr_workers, measured_capacity
from ivr.server.state import AUDIOSOCKET_ADDRESS, CALL_LOG, GATEWAY, LIVE_MODELS, SETTINGS, WARM_UP
from ivr.server.webguard import HostPolicy, request_guard
from ivr.telephony.transfer import HANDOFF, Handoff, QueueTargets, add_handoff_routes
from ivr.trainer.training import Trainer
from ivr.voice.events import CallerHangup
from ivr.voice.gateway import Gateway
from ivr.voice.session import VoiceServices
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales
from ivr.voice.warmup import warm_up

log = logging.getLogger(__name__)


async def load_services(project_root: Path, settings: ServerSettings) -> VoiceServices:
    """Everything calls share: dialogue engines, speech models, prompt audio."""
    locales = load_voice_locales(project_root / "locales")
    projects = [Project(project_root, name) for name in locales]
    loaded = await asyncio.gather(  # each on its own thread
        *(load_engine(p, conversations=settings.redis_url) for p in projects))
    engines = {p.locale: engine for p, engine in zip(projects, loaded, strict=True)}
    if settings.default_locale not in engines:
        raise IvrError(f"default locale {settings.default_locale!r} has no locales/*.yml")
    speech = await load_speech_models(locales, settings.end_of_speech_ms, asr_workers())
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
    # Host, Origin and Content-Type are checked before any route (ivr/server/webguard.py).
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
                functools.partial(audiosocket_call, gateway), settings.audiosocket_host,
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
    add_routes(app)
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
