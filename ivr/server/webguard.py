"""What ``ivr serve`` checks on every HTTP request and connection, before any route.

- **Host** (every route): the ``Host`` header must name this server: a loopback name or
  address, the bind host, ``$IVR_PUBLIC_URL``'s host, or one of ``$IVR_ALLOWED_HOSTS``;
  bound to every interface (``0.0.0.0``, ``::``), any IP address too. Otherwise 421. A web
  page that re-points its own DNS name at 127.0.0.1 (DNS rebinding) sends its own name.
  (A Host that is an IP address cannot come from such a page: its origin would be that
  address, which is this server's own.)
- **Origin**: a request whose ``Origin`` is not this server's own (its Host, or the public
  URL's origin) is refused, 403: another site's page in a browser on this host or network.
  On the machine APIs (telephony, tokens) a browser's ``Sec-Fetch-Site: cross-site`` or
  ``same-site`` is refused as well, with or without an Origin; their clients are programs.
  (Their own-origin ``Origin`` stays allowed: WebSocket libraries send one by default.)
- **JSON only** on the machine APIs that take a body: ``Content-Type: application/json``,
  else 415. A page can send ``text/plain`` cross-origin without asking (no CORS
  preflight), never ``application/json``.
- **Slow clients** (``GuardedSite``): a connection's first request head must be complete
  within ``head_timeout_s`` and later ones within the same time after the previous answer
  (aiohttp's ``keepalive_timeout``), else the connection is closed; one source may hold at
  most ``max_per_source`` connections at once (a trusted proxy's are not counted).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from ivr.console.throttle import IPNetwork, source_key

log = logging.getLogger(__name__)

# Programs' APIs (no console session): a browser page has no business calling them.
MACHINE_APIS = frozenset({"/twilio", "/ws", "/audiosocket/calls", "/acd/feedback",
                          "/admin/models/reload", "/metrics", "/audiosocket/result",
                          # Twilio's webhooks: forms, not JSON (ivr/telephony/transfer.py checks
                          # their type, and their signature or a loopback source)
                          "/twilio/voice", "/twilio/after-stream"})
JSON_APIS = frozenset({"/audiosocket/calls", "/acd/feedback", "/admin/models/reload"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def split_host(value: str) -> tuple[str, str | None]:
    """``Host`` (or an origin's netloc) as (lower-case name without brackets or trailing
    dot, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8080
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") and rest[1:] else None
    if value.count(":") == 1:
        name, port = value.split(":")
        return name.rstrip("."), port or None
    return value.rstrip("."), None


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class HostPolicy:
    """The names a request's ``Host`` may give for this server."""

    names: frozenset[str]
    any_ip: bool = False  # bound to every interface: any address of this machine
    public_origin: str | None = None  # scheme://host[:port] of $IVR_PUBLIC_URL

    @classmethod
    def for_server(cls, bind_host: str, public_url: str | None = None,
                   extra: str | Iterable[str] | None = None) -> HostPolicy:
        names = set(LOOPBACK_NAMES)
        extra_names = extra.split(",") if isinstance(extra, str) else list(extra or ())
        names.update(split_host(n)[0] for n in extra_names if n.strip())
        any_ip = bind_host.strip().lower() in _WILDCARDS
        if not any_ip:
            names.add(split_host(f"[{bind_host}]" if ":" in bind_host else bind_host)[0])
        public_origin = None
        if public_url:
            url = urlsplit(public_url)
            if url.hostname:
                names.add(url.hostname.lower().rstrip("."))
                public_origin = _origin(f"{url.scheme}://{url.netloc.rpartition('@')[2]}")
        return cls(frozenset(names), any_ip, public_origin)

    def allows(self, host: str | None) -> bool:
        """Whether a ``Host`` header names this server (none at all: not a browser's
        request, which always has one)."""
        if host is None:
            return True
        name, _ = split_host(host)
        if name in self.names:
            return True
        ip = _ip(name)
        return ip is not None and (ip.is_loopback or self.any_ip or (
            isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None
            and ip.ipv4_mapped.is_loopback))

    def own_origin(self, origin: str, host: str | None) -> bool:
        """Whether ``Origin`` is this server's: the origin the request was sent to (its
        Host), or the public URL's."""
        mine = _origin(origin)
        if mine is None:
            return False  # "null" (a sandboxed frame, a file) or garbage
        if mine == self.public_origin:
            return True
        scheme, _, netloc = mine.partition("://")
        return host is not None and _netloc(scheme, host) == netloc


def _netloc(scheme: str, host: str) -> str:
    name, port = split_host(host)
    name = f"[{name}]" if ":" in name else name
    return name if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{name}:{port}"


def _origin(value: str) -> str | None:
    """``scheme://host[:port]`` normalised (lower case, no default port), or None."""
    try:
        url = urlsplit(value.strip())
    except ValueError:
        return None
    if not url.scheme or not url.netloc or url.path not in ("", "/"):
        return None
    # A WebSocket URL (IVR_PUBLIC_URL is often wss://) names the same origin as http(s).
    scheme = {"ws": "http", "wss": "https"}.get(url.scheme.lower(), url.scheme.lower())
    return f"{scheme}://{_netloc(scheme, url.netloc)}"


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def request_guard(policy: HostPolicy) -> Callable[[web.Request, Handler],
                                                  Awaitable[web.StreamResponse]]:
    """The one middleware for Host, Origin and Content-Type (see the module's doc)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not policy.allows(host):
            return _refuse(421, "this server does not answer for that host name")
        origin = request.headers.get("Origin")
        if origin is not None and not policy.own_origin(origin, host):
            return _refuse(403, "requests from another site's pages are refused")
        if request.path in MACHINE_APIS:
            if request.headers.get("Sec-Fetch-Site", "").lower() in ("cross-site",
                                                                     "same-site"):
                return _refuse(403, "requests from another site's pages are refused")
            if (request.path in JSON_APIS and request.method == "POST"
                    and request.content_type != "application/json"):
                return _refuse(415, "send Content-Type: application/json")
        return await handler(request)

    return guard


class ConnectionGuard:
    """Per-connection limits, as a wrapper of the server's protocol factory: at most
    ``max_per_source`` open connections per source address (0: no cap), and the first
    request head complete within ``head_timeout_s``."""

    def __init__(self, head_timeout_s: float = 10.0, max_per_source: int = 64,
                 exempt: Iterable[IPNetwork] = ()) -> None:
        self.head_timeout_s = head_timeout_s
        self.max_per_source = max_per_source
        self.exempt = tuple(exempt)  # trusted proxies: their connections are many clients'
        self.open: Counter[str] = Counter()
        self.refused = 0  # connections refused over the cap
        self.timed_out = 0  # connections closed for a slow request head

    def counted(self, address: str) -> bool:
        ip = _ip(address)
        return self.max_per_source > 0 and not (
            ip is not None and any(ip in net for net in self.exempt))

    def wrap(self, factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, factory)


class _Guarded(asyncio.Protocol):
    """One connection: hands every event to aiohttp's protocol, which it creates only once
    the connection is admitted, and closes the transport when the first request head is
    not complete in time (end of head: the first blank line, CRLF CRLF or LF LF)."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.BaseProtocol]
                 ) -> None:
        self.guard = guard
        self.factory = factory
        self.inner: asyncio.Protocol | None = None
        self.source: str | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tail = b""  # the last bytes seen, for an end of head split across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        guard = self.guard
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if guard.counted(address):
            source = source_key(address)
            if guard.open[source] >= guard.max_per_source:
                guard.refused += 1
                log.warning("refused a connection from %s: %d open already", source,
                            guard.open[source])
                transport.abort()
                return
            guard.open[source] += 1
            self.source = source
        self.timer = asyncio.get_running_loop().call_later(guard.head_timeout_s, self._slow)
        self.inner = self.factory()  # type: ignore[assignment]
        assert self.inner is not None
        self.inner.connection_made(transport)

    def _slow(self) -> None:
        self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.guard.timed_out += 1
            log.info("closed a connection: no complete request head in %g s",
                     self.guard.head_timeout_s)
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.timer is not None:
            seen = self.tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self.timer.cancel()
                self.timer = None
            self.tail = seen[-3:]
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.source is not None:
            self.guard.open[self.source] -= 1
            if self.guard.open[self.source] <= 0:
                del self.guard.open[self.source]
            self.source = None
        if self.inner is not None:
            self.inner.connection_lost(exc)
            self.inner = None


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite`` with a ``ConnectionGuard`` around the server's protocol (the
    runner's ``server`` is the protocol factory ``loop.create_server`` takes)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 guard: ConnectionGuard) -> None:
        super().__init__(runner)
        self.host, self.requested_port, self.guard = host, port, guard

    @property
    def port(self) -> int:
        """The port listened on (the one the OS picked for port 0)."""
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.guard.wrap(server), self.host, self.requested_port)
