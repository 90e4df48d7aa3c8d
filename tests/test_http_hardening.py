"""What ``ivr serve`` checks before any route (ivr/server/webguard.py), over real sockets: the Host
header (DNS rebinding), another site's Origin, JSON-only machine APIs, and slow clients
(a request head must be complete within the bound; connections per source are capped).

The app has no dialogue engine or speech model and no tokens on its machine APIs (the
case the outside probe drove from a web page), so this file loads no model and runs in
seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from conftest import copy_project
from phones import serving
from test_access import ADMIN_PASSWORD, ADMIN_USER, StubReplayer
from test_console import http_client

from ivr.calllog.recorder import CallLogSettings
from ivr.console import CONSOLE
from ivr.console.auth import ADMIN, CSRF_HEADER, hash_password
from ivr.project import Project
from ivr.server.app import build_app
from ivr.server.run import start_server
from ivr.server.settings import ServerSettings
from ivr.server.webguard import HostPolicy
from ivr.telephony.twilio import twilio_signature
from ivr.voice.session import VoiceServices
from ivr.voice.tts import EspeakTts, PromptAudio

PUBLIC_HOST = "ivr.bank.example"
PUBLIC_URL = f"wss://{PUBLIC_HOST}"  # as docs/telephony.md has it behind a TLS proxy
TWILIO_TOKEN = "hardening-twilio"
EVIL = "http://evil.example"


@dataclass
class Guarded:
    url: str
    port: int
    root: Path
    settings: ServerSettings
    services: VoiceServices


def settings_in(tmp: Path, **changes: object) -> ServerSettings:
    settings = ServerSettings(
        port=0, audiosocket_port=-1, default_locale="ko", public_url=PUBLIC_URL,
        ws_token=None, acd_token=None, twilio_auth_token=TWILIO_TOKEN,  # no machine tokens
        allowed_hosts=None, trusted_proxies=None,
        call_log=CallLogSettings(url=f"sqlite:///{tmp / 'calls.sqlite3'}",
                                 recordings=tmp / "rec", instance="hardening"))
    for name, value in changes.items():
        setattr(settings, name, value)
    return settings


def bare_services() -> VoiceServices:
    return VoiceServices(engines={}, locales={}, prompts=PromptAudio(EspeakTts()),
                         recognizer_for=lambda locale: None, default_locale="ko")


@pytest.fixture(scope="module")
async def guarded(project: Project, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Guarded]:
    """The app without machine tokens, behind IVR_PUBLIC_URL, with an admin user."""
    tmp = tmp_path_factory.mktemp("hardening")
    (tmp / "project").mkdir()
    root = copy_project(project.root, tmp / "project").root
    settings, services = settings_in(tmp), bare_services()
    app = build_app(settings, services, root)
    async with serving(app) as url:
        app[CONSOLE].replayer = StubReplayer()  # type: ignore[assignment]
        app[CONSOLE].accounts.set_user(ADMIN_USER, ADMIN, hash_password(ADMIN_PASSWORD))
        yield Guarded(url, int(url.rsplit(":", 1)[1]), root, settings, services)


MACHINE_POSTS = ("/acd/feedback", "/audiosocket/calls", "/admin/models/reload")


async def test_machine_apis_take_json_only(guarded: Guarded) -> None:
    """A page can send text/plain anywhere without a CORS preflight; never JSON."""
    async with aiohttp.ClientSession() as http:
        for path in MACHINE_POSTS:
            for headers in ({"Content-Type": "text/plain"},
                            {"Content-Type": "application/x-www-form-urlencoded"}, {}):
                resp = await http.post(f"{guarded.url}{path}", data=b'{"locale": "ko"}',
                                       headers=headers)
                assert resp.status == 415, (path, headers, await resp.text())
                assert "application/json" in (await resp.json())["error"]
            # JSON gets through to the handler (which judges the body).
            resp = await http.post(f"{guarded.url}{path}", json={})
            assert resp.status not in (403, 415, 421), (path, resp.status)
        resp = await http.post(f"{guarded.url}/admin/models/reload", json={},
                               headers={"Content-Type": "application/json; charset=utf-8"})
        assert resp.status == 200 and (await resp.json())["reloaded"] == []


async def test_machine_apis_refuse_other_sites_pages(guarded: Guarded) -> None:
    async with aiohttp.ClientSession() as http:
        for path in MACHINE_POSTS:
            for headers in ({"Origin": EVIL}, {"Origin": "null"},
                            {"Origin": f"http://127.0.0.1:{guarded.port + 1}"},
                            {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
                resp = await http.post(f"{guarded.url}{path}", json={}, headers=headers)
                assert resp.status == 403, (path, headers)
                assert "another site" in (await resp.json())["error"]
        for path in ("/metrics", "/ws"):
            resp = await http.get(f"{guarded.url}{path}", headers={"Origin": EVIL})
            assert resp.status == 403, path
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # a page's WebSocket
            await http.ws_connect(f"{guarded.url}/ws", origin=EVIL)
        assert refused.value.status == 403
        # A program's WebSocket library may send its own origin (websocket-client does).
        async with http.ws_connect(f"{guarded.url}/ws", origin=guarded.url) as ws:
            await ws.close()


async def test_every_route_checks_the_host_header(guarded: Guarded) -> None:
    """DNS rebinding: a page on evil.example re-points its name at 127.0.0.1; the browser
    then sends Host: evil.example to this server."""
    async with aiohttp.ClientSession() as http:
        for path in ("/health", "/console/login", "/console/api/me", "/metrics", "/nowhere"):
            for host in ("evil.example", f"evil.example:{guarded.port}", "127.0.0.1.evil.example",
                         "localhost.evil.example"):
                resp = await http.get(f"{guarded.url}{path}", headers={"Host": host})
                assert resp.status == 421, (path, host)
        resp = await http.post(f"{guarded.url}/acd/feedback", json={},
                               headers={"Host": "evil.example"})
        assert resp.status == 421
        for host in (f"127.0.0.1:{guarded.port}", f"localhost:{guarded.port}", "localhost",
                     f"[::1]:{guarded.port}", PUBLIC_HOST, f"{PUBLIC_HOST}:443",
                     PUBLIC_HOST.upper()):
            resp = await http.get(f"{guarded.url}/health", headers={"Host": host})
            assert resp.status == 200, host


def test_the_allowed_hosts() -> None:
    local = HostPolicy.for_server("127.0.0.1")
    assert local.allows("127.0.0.1:8080") and local.allows("localhost") and local.allows(None)
    assert local.allows("[::1]:8080") and local.allows("127.0.0.2")  # loopback addresses
    assert not local.allows("10.0.0.5:8080") and not local.allows("evil.example")
    named = HostPolicy.for_server("10.0.0.5", "https://ivr.bank.example/", "desk.bank.local, x")
    assert named.allows("10.0.0.5:8080") and named.allows("ivr.bank.example")
    assert named.allows("desk.bank.local:8080") and not named.allows("10.0.0.6")
    every = HostPolicy.for_server("0.0.0.0")  # any address of the machine; names: no
    assert every.allows("10.0.0.6:8080") and every.allows("[fe80::1]")
    assert not every.allows("evil.example")
    assert named.own_origin("https://ivr.bank.example", "127.0.0.1:8080")  # behind a proxy
    assert local.own_origin("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert not local.own_origin("http://127.0.0.1:8081", "127.0.0.1:8080")
    assert not local.own_origin("http://evil.example", "127.0.0.1:8080")
    assert not local.own_origin("null", "127.0.0.1:8080")


async def test_the_console_still_works_from_its_own_pages(guarded: Guarded) -> None:
    """A browser sends Origin on the console's own POSTs: same origin, so allowed; another
    site's page gets 403 (on top of the CSRF token and the SameSite cookie)."""
    async with http_client() as http:
        own = {"Origin": guarded.url}
        resp = await http.post(f"{guarded.url}/console/api/login", headers=own,
                               json={"name": ADMIN_USER, "password": ADMIN_PASSWORD})
        assert resp.status == 200
        csrf = (await resp.json())["csrf"]
        resp = await http.get(f"{guarded.url}/console/api/me",
                              headers={"Sec-Fetch-Site": "same-origin"})
        assert resp.status == 200
        # Behind the proxy: Host and Origin are the public name's.
        resp = await http.get(f"{guarded.url}/console/api/me",
                              headers={"Host": PUBLIC_HOST, "Origin": f"https://{PUBLIC_HOST}"})
        assert resp.status == 200
        # A link from another site to the console page is fine (a navigation, no Origin).
        resp = await http.get(f"{guarded.url}/console/", headers={"Sec-Fetch-Site": "cross-site"})
        assert resp.status == 200
        for origin in (EVIL, "null"):
            resp = await http.post(f"{guarded.url}/console/api/users", json={"name": "eve"},
                                   headers={"Origin": origin, CSRF_HEADER: csrf})
            assert resp.status == 403 and "another site" in (await resp.json())["error"]
            resp = await http.post(f"{guarded.url}/console/api/login", headers={"Origin": origin},
                                   json={"name": ADMIN_USER, "password": ADMIN_PASSWORD})
            assert resp.status == 403
        resp = await http.post(f"{guarded.url}/console/api/logout",
                               headers={**own, CSRF_HEADER: csrf})
        assert resp.status == 200


async def test_twilio_still_connects_behind_the_public_url(guarded: Guarded) -> None:
    """Twilio dials wss://PUBLIC_HOST/twilio; the proxy passes Host on to the engine."""
    url = f"{guarded.url}/twilio"
    signed = twilio_signature(TWILIO_TOKEN, f"{PUBLIC_URL}/twilio")
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, headers={"Host": PUBLIC_HOST,
                                                 "X-Twilio-Signature": signed}) as ws:
            await ws.close()
        async with http.ws_connect(url, headers={"X-Twilio-Signature": signed}) as ws:
            await ws.close()  # a proxy that sets Host to the engine's own address
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers={"Host": "evil.example",
                                                "X-Twilio-Signature": signed})
        assert refused.value.status == 421


# --- slow clients (real sockets) --------------------------------------------------------
@pytest.fixture
async def slow_server(project: Project, tmp_path: Path) -> AsyncIterator[Guarded]:
    """``ivr serve``'s own listener (``start_server``) with a 1 s head bound and at most 4
    connections per source."""
    (tmp_path / "project").mkdir()
    root = copy_project(project.root, tmp_path / "project").root
    settings = settings_in(tmp_path, header_timeout_s=1.0, max_connections_per_source=4)
    services = bare_services()
    runner, site = await start_server(build_app(settings, services, root), settings)
    try:
        yield Guarded(f"http://127.0.0.1:{site.port}", site.port, root, settings, services)
    finally:
        await runner.cleanup()


async def closed_after(reader: asyncio.StreamReader, limit_s: float) -> float:
    """Seconds until the server closes the connection (reads return nothing); a timeout
    (never closed) fails the test."""
    start = time.monotonic()
    try:
        while await asyncio.wait_for(reader.read(4096),
                                     max(0.01, start + limit_s - time.monotonic())):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return time.monotonic() - start


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes,
                  every_s: float = 0.2) -> float:
    """Send a request head a byte at a time; seconds until the server hangs up."""

    async def send() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every_s)

    sender = asyncio.create_task(send())
    try:
        return await closed_after(reader, 10)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()


async def slow_client(port: int, head: bytes) -> float:
    return await trickle(*await asyncio.open_connection("127.0.0.1", port), head)


SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"


async def test_slow_request_heads_are_cut_while_a_normal_call_completes(
        slow_server: Guarded) -> None:
    """The probe kept 30 connections open for minutes, a header byte every 2 s."""
    started = time.monotonic()
    slow = [asyncio.create_task(slow_client(slow_server.port, SLOW_HEAD)) for _ in range(3)]
    async with aiohttp.ClientSession() as http:  # meanwhile, a normal request
        resp = await http.get(f"{slow_server.url}/health")
        assert resp.status == 200 and (await resp.json())["status"] == "ok"
    closed = await asyncio.wait_for(asyncio.gather(*slow), 10)
    assert all(0.8 <= s <= 2.5 for s in closed), closed  # the 1 s bound, not the 50 s head
    assert time.monotonic() - started < 5


async def test_a_slow_second_request_head_on_a_kept_alive_connection_is_cut(
        slow_server: Guarded) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_server.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        # The next request, slowly: aiohttp's keep-alive timer (the same 1 s) closes it,
        # checking once a second.
        assert await trickle(reader, writer, SLOW_HEAD) <= 3.0
    finally:
        writer.close()


async def test_connections_per_source_are_capped(slow_server: Guarded) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", slow_server.port) for _ in range(4)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", slow_server.port)
        assert await closed_after(reader, 5) < 0.5  # the fifth: closed at once
        writer.close()
    finally:
        for _, w in conns:
            w.close()
    await asyncio.sleep(0.2)  # their slots are free again
    async with aiohttp.ClientSession() as http:
        assert (await http.get(f"{slow_server.url}/health")).status == 200
