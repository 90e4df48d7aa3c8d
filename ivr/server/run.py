"""``ivr serve`` running: listening with the connection limits, and draining on a signal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from aiohttp import web

from ivr.console.throttle import parse_networks
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import AUDIOSOCKET_ADDRESS, GATEWAY
from ivr.server.webguard import ConnectionGuard, GuardedSite
from ivr.voice.metrics import show_call_ends


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
