"""Who may do what, over HTTP, on the engine's real app: every route of the app for an
anonymous caller, ops, a trainer and an admin (against this file's own table, so a wrong
role in ROUTES or a new route nobody thought about fails here); CSRF on every state-changing
console route; the bearer-token APIs; session expiry; sessions shared by two instances on
one store; the admins' user API; one audit row per recording access.

The app has no dialogue engine or speech model (none of these routes needs one) and a
stand-in replayer, so this file loads no model and runs in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from conftest import KNOWN, copy_project
from phones import serving
from test_console import (
    OPS_PASSWORD,
    OPS_USER,
    TRAINER_PASSWORD,
    TRAINER_USER,
    http_client,
    login,
)

from ivr.calllog.recorder import CallLogSettings
from ivr.calllog.schema import sessions
from ivr.calllog.store import CallStore
from ivr.console import CONSOLE, THROTTLE, ConsoleContext
from ivr.console.accounts import AccountStore, UserChangeRefused
from ivr.console.auth import (
    ADMIN,
    COOKIE,
    CSRF_HEADER,
    IDLE_S,
    MAX_AGE_S,
    TOUCH_S,
    Sessions,
    hash_password,
)
from ivr.console.throttle import (
    Attempt,
    LoginThrottle,
    Policy,
    login_attempts,
    parse_networks,
    source_key,
)
from ivr.core.events import CallEnded, CallStarted, RecordingStarted
from ivr.errors import shown
from ivr.project import Project
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.voice.session import VoiceServices
from ivr.voice.tts import EspeakTts, PromptAudio

WS_TOKEN, ACD_TOKEN, TWILIO_TOKEN = "access-ws-token", "access-acd-token", "access-twilio"
ADMIN_USER, ADMIN_PASSWORD = "ada", "lovelace-분석-1843"
STUB_MODEL = "ko-stub.tar.gz"


class StubReplayer:
    """Stands in for the Replayer: a real replay loads a whole model, and these tests are
    about who may start one and that it is audited, not about what it finds."""

    def models(self, locale: str) -> list[Path]:
        return [Path(STUB_MODEL)]

    async def replay(self, call_id: str, model: Path | None) -> dict[str, Any]:
        return {"call_id": call_id, "model": model.name if model else None}


@dataclass
class Access:
    url: str
    app: web.Application
    settings: ServerSettings
    services: VoiceServices
    root: Path
    context: ConsoleContext
    call: str  # a logged call with a recording


def log_call(context: ConsoleContext, call_id: str) -> str:
    """A finished call with a (silent, one-second, two-channel) recording, in the log."""
    assert context.recordings is not None
    relative = f"2025-01-01/{call_id}.wav"
    path = context.recordings / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0" * 8000 * 4)
    context.store.write([
        (1, RecordingStarted(call_id=call_id, recording=relative)),
        (2, CallStarted(call_id=call_id, transport="websocket", caller=KNOWN, locale="ko")),
        (3, CallEnded(call_id=call_id, outcome="self_service")),
    ], "access-test")
    return call_id


@pytest.fixture(scope="module")
async def access(project: Project, tmp_path_factory: pytest.TempPathFactory
                 ) -> AsyncIterator[Access]:
    """The app (no engines: keys-only, nothing to load) on a copy of the project, its call
    log in a temp folder, an ops user, a trainer, an admin and one call with a recording."""
    tmp = tmp_path_factory.mktemp("access")
    (tmp / "project").mkdir()
    root = copy_project(project.root, tmp / "project").root
    services = VoiceServices(engines={}, locales={}, prompts=PromptAudio(EspeakTts()),
                             recognizer_for=lambda locale: None, default_locale="ko")
    settings = ServerSettings(
        audiosocket_port=-1, ws_token=WS_TOKEN, acd_token=ACD_TOKEN,
        twilio_auth_token=TWILIO_TOKEN, default_locale="ko",
        call_log=CallLogSettings(url=f"sqlite:///{tmp / 'calls.sqlite3'}",
                                 recordings=tmp / "rec", instance="access-a"))
    app = build_app(settings, services, root)
    async with serving(app) as url:
        context = app[CONSOLE]
        context.replayer = StubReplayer()  # type: ignore[assignment]
        context.accounts.set_user(OPS_USER, "ops", hash_password(OPS_PASSWORD))
        context.accounts.set_user(TRAINER_USER, "trainer", hash_password(TRAINER_PASSWORD))
        context.accounts.set_user(ADMIN_USER, ADMIN, hash_password(ADMIN_PASSWORD))
        yield Access(url, app, settings, services, root, context,
                     log_call(context, "access-call"))


PASSWORDS = {"ops": (OPS_USER, OPS_PASSWORD), "trainer": (TRAINER_USER, TRAINER_PASSWORD),
             "admin": (ADMIN_USER, ADMIN_PASSWORD)}


def cookie_of(http: aiohttp.ClientSession) -> str:
    return next(c.value for c in http.cookie_jar if c.key == COOKIE)


def stored(store: CallStore, token: str) -> dict[str, Any] | None:
    """The session row of a cookie token (the table keys it by the token's SHA-256)."""
    key = hashlib.sha256(token.encode()).hexdigest()
    with store.engine.connect() as db:
        row = db.execute(sa.select(sessions).where(sessions.c.token_hash == key)).first()
    return dict(row._mapping) if row else None


def move_back(store: CallStore, token: str, **seconds: float) -> None:
    """Move a session's stored times back, as if that much time had passed."""
    key = hashlib.sha256(token.encode()).hexdigest()
    with store.engine.begin() as db:
        db.execute(sessions.update().where(sessions.c.token_hash == key).values(
            **{column: sessions.c[column] - s for column, s in seconds.items()}))


# --- the role x route matrix ----------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """What each caller gets from a route. An allowed caller of a POST route sends its CSRF
    token and a body the handler refuses (400): past the guard, yet nothing is trained,
    promoted or replayed."""

    anonymous: int
    ops: int
    trainer: int
    admin: int
    query: str = ""
    body: Any = None


def everyone(status: int, body: Any = None) -> Cell:
    return Cell(status, status, status, status, body=body)


def readers(status: int = 200, query: str = "", body: Any = None) -> Cell:
    return Cell(401, status, status, status, query, body)


def trainers(status: int = 200, query: str = "", body: Any = None) -> Cell:
    return Cell(401, 403, status, status, query, body)


def admins(status: int = 200, body: Any = None) -> Cell:
    return Cell(401, 403, 403, status, body=body)


# Declared here, not read from ROUTES: the point is to catch a wrong role there.
EXPECTED: dict[tuple[str, str], Cell] = {
    # The telephony and machine APIs: a console session opens none of them.
    ("GET", "/twilio"): everyone(403),  # no X-Twilio-Signature
    ("HEAD", "/twilio"): everyone(403),
    ("GET", "/ws"): everyone(401),  # no bearer token
    ("HEAD", "/ws"): everyone(401),
    ("POST", "/audiosocket/calls"): everyone(401, {}),
    ("GET", "/audiosocket/result"): everyone(401),  # no bearer token
    ("HEAD", "/audiosocket/result"): everyone(401),
    ("POST", "/twilio/voice"): everyone(403, {}),  # no X-Twilio-Signature
    ("POST", "/twilio/after-stream"): everyone(403, {}),
    ("POST", "/acd/feedback"): everyone(401, {}),
    ("POST", "/admin/models/reload"): everyone(401, {}),
    ("GET", "/health"): everyone(200),
    ("HEAD", "/health"): everyone(200),
    ("GET", "/metrics"): everyone(401),
    ("HEAD", "/metrics"): everyone(401),
    # The console.
    ("GET", "/console/login"): everyone(200),
    ("GET", "/console/static/{name}"): everyone(200),
    ("POST", "/console/api/login"): everyone(400, {}),  # no name or password
    ("GET", "/console"): Cell(302, 200, 200, 200),
    ("GET", "/console/"): Cell(302, 200, 200, 200),
    ("GET", "/console/api/me"): readers(),
    ("POST", "/console/api/logout"): readers(),
    ("GET", "/console/api/calls"): readers(),
    ("GET", "/console/api/calls/{call_id}"): readers(),
    ("GET", "/console/api/calls/{call_id}/audio"): readers(),
    ("GET", "/console/api/calls/{call_id}/models"): readers(),
    ("POST", "/console/api/calls/{call_id}/replay"): readers(400, body={"model": "no.tar.gz"}),
    ("GET", "/console/api/figures"): readers(),
    ("GET", "/console/api/trends"): readers(query="locale=ko&days=7"),
    ("GET", "/console/api/review"): trainers(query="locale=ko"),
    ("GET", "/console/api/review/options"): trainers(query="locale=ko"),
    ("GET", "/console/api/review/clusters/{cluster_id}"): trainers(404, "locale=ko"),
    ("POST", "/console/api/review/label"): trainers(400, body={}),
    ("POST", "/console/api/review/asr"): trainers(400, body={}),
    ("POST", "/console/api/review/synonym"): trainers(400, body={}),
    ("GET", "/console/api/review/proposals"): trainers(query="locale=ko"),
    ("POST", "/console/api/review/proposals"): trainers(400, body={}),
    ("POST", "/console/api/review/proposals/{proposal_id}"): trainers(400, body={}),
    ("GET", "/console/api/models"): trainers(),
    ("GET", "/console/api/train"): trainers(),
    ("POST", "/console/api/train"): trainers(400, body={}),
    ("POST", "/console/api/compare"): trainers(400, body={}),
    ("POST", "/console/api/promote"): trainers(400, body={}),
    # Phone verification locks: ops and admins (docs/console.md), not trainers.
    ("GET", "/console/api/verification/locks"): Cell(401, 200, 403, 200),
    ("POST", "/console/api/verification/unlock"): Cell(401, 400, 403, 400, body={}),
    ("GET", "/console/api/users"): admins(),
    ("POST", "/console/api/users"): admins(400, {}),
}
ROLES = ("anonymous", "ops", "trainer", "admin")


def app_routes(app: web.Application) -> list[tuple[str, str]]:
    return [(r.method, r.resource.canonical) for r in app.router.routes() if r.resource]


def concrete(path: str, call: str) -> str:
    return (path.replace("{call_id}", call).replace("{name}", "app.js")
            .replace("{cluster_id}", "c0").replace("{proposal_id}", "p0"))


async def test_every_route_answers_each_role_as_declared(access: Access) -> None:
    routes = app_routes(access.app)
    missing = [r for r in routes if r not in EXPECTED]
    assert not missing, f"routes without an expectation here: {missing}"
    assert not [r for r in EXPECTED if r not in routes], "expectations of no route"
    # Logging out ends the session it is sent with: those cells run last.
    routes.sort(key=lambda r: r[1] == "/console/api/logout")
    async with http_client() as anonymous, http_client() as ops, http_client() as trainer, \
            http_client() as admin:
        clients = dict(zip(ROLES, (anonymous, ops, trainer, admin), strict=True))
        csrf = {role: await login(clients[role], access.url, *PASSWORDS[role])
                for role in ROLES[1:]}
        wrong = []
        for method, path in routes:
            cell = EXPECTED[method, path]
            url = f"{access.url}{concrete(path, access.call)}"
            url += f"?{cell.query}" if cell.query else ""
            for role, http in clients.items():
                headers = {CSRF_HEADER: csrf[role]} if role in csrf else {}
                resp = await http.request(method, url, json=cell.body, headers=headers,
                                          allow_redirects=False)
                if resp.status != getattr(cell, role):
                    wrong.append(f"{method} {path} as {role}: {resp.status}, expected "
                                 f"{getattr(cell, role)} ({(await resp.text())[:80]!r})")
                elif resp.status == 302:
                    assert resp.headers["Location"] == "/console/login"
        assert not wrong, "\n".join(wrong)


def state_changing(app: web.Application) -> list[str]:
    """Every console route that changes something: all but GET, and the login (JSON only,
    which no other site can send)."""
    return [path for method, path in app_routes(app) if path.startswith("/console")
            and method not in ("GET", "HEAD") and path != "/console/api/login"]


async def test_state_changes_without_the_csrf_token_are_refused_for_every_role(
        access: Access) -> None:
    paths = state_changing(access.app)
    assert "/console/api/users" in paths and "/console/api/logout" in paths
    async with http_client() as ops, http_client() as trainer, http_client() as admin:
        clients = {"ops": ops, "trainer": trainer, "admin": admin}
        csrf = {role: await login(http, access.url, *PASSWORDS[role])
                for role, http in clients.items()}
        refused = 0
        for path in paths:
            cell = EXPECTED["POST", path]
            url = f"{access.url}{concrete(path, access.call)}"
            for role, http in clients.items():
                if getattr(cell, role) in (401, 403):
                    continue  # refused for the role anyway
                others = [t for r, t in csrf.items() if r != role]  # another session's
                for headers in ({}, {CSRF_HEADER: "forged"}, {CSRF_HEADER: others[0]}):
                    resp = await http.post(url, json=cell.body, headers=headers)
                    assert resp.status == 403, (path, role, headers)
                    assert CSRF_HEADER in (await resp.json())["error"]
                    refused += 1
        assert refused >= 3 * len(paths)
        for role, http in clients.items():  # the refused logouts ended nothing
            assert (await http.get(f"{access.url}/console/api/me")).status == 200, role


async def test_the_bearer_token_apis_refuse_without_their_token(access: Access) -> None:
    url = access.url

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with aiohttp.ClientSession() as http:
        for headers in ({}, bearer("wrong"), bearer(ACD_TOKEN)):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{url}/ws", headers=headers)
            assert refused.value.status == 401
            assert (await http.get(f"{url}/metrics", headers=headers)).status == 401
            resp = await http.post(f"{url}/admin/models/reload", json={}, headers=headers)
            assert resp.status == 401
        for headers in ({}, bearer("wrong"), bearer(WS_TOKEN)):  # it has its own token
            resp = await http.post(f"{url}/acd/feedback", json={}, headers=headers)
            assert resp.status == 401
        # With the token each gets past the check.
        assert (await http.get(f"{url}/metrics", headers=bearer(WS_TOKEN))).status == 200
        resp = await http.post(f"{url}/admin/models/reload", json={"locale": "xx"},
                               headers=bearer(WS_TOKEN))
        assert resp.status == 400 and "no locale" in (await resp.json())["error"]
        resp = await http.post(f"{url}/acd/feedback", json={"call_id": "nope"},
                               headers=bearer(ACD_TOKEN))
        assert resp.status == 400


# --- sessions ---------------------------------------------------------------------------------
async def test_the_store_keeps_a_hash_of_the_cookie_not_the_cookie(access: Access) -> None:
    store = access.context.store
    async with http_client() as http:
        csrf = await login(http, access.url, OPS_USER, OPS_PASSWORD)
        token = cookie_of(http)
        row = stored(store, token)
        assert row is not None and row["user"] == OPS_USER and row["role"] == "ops"
        assert row["csrf"] == csrf and row["created_at"] == row["last_seen"]
        with store.engine.connect() as db:
            dump = repr(db.execute(sa.select(sessions)).all())
        assert token not in dump


async def test_a_session_ends_when_idle_too_long(access: Access) -> None:
    store = access.context.store
    # Logged in and unused since: 8 h less two minutes, then 8 h and a second (both well
    # within the 12 h lifetime, so only the idle limit can end the second).
    async with http_client() as recent, http_client() as idle:
        for http, back in ((recent, IDLE_S - 120), (idle, IDLE_S + 1)):
            await login(http, access.url, OPS_USER, OPS_PASSWORD)
            move_back(store, cookie_of(http), last_seen=back, created_at=back)
        assert (await recent.get(f"{access.url}/console/api/me")).status == 200
        assert (await idle.get(f"{access.url}/console/api/me")).status == 401
        assert stored(store, cookie_of(idle)) is None  # and the row is gone
        assert stored(store, cookie_of(recent)) is not None


async def test_a_session_ends_at_its_absolute_lifetime_even_when_in_use(
        access: Access) -> None:
    assert MAX_AGE_S == 12 * 3600
    store = access.context.store
    async with http_client() as http:
        await login(http, access.url, OPS_USER, OPS_PASSWORD)
        token = cookie_of(http)
        move_back(store, token, created_at=MAX_AGE_S - 120)  # used a moment ago, 11h58 old
        assert (await http.get(f"{access.url}/console/api/me")).status == 200
        move_back(store, token, created_at=121)  # 12 h and a second
        assert (await http.get(f"{access.url}/console/api/me")).status == 401
        assert stored(store, token) is None


async def test_last_use_is_written_at_most_once_a_minute(access: Access) -> None:
    store = access.context.store
    async with http_client() as http:
        await login(http, access.url, OPS_USER, OPS_PASSWORD)
        token = cookie_of(http)
        seen = stored(store, token)["last_seen"]  # type: ignore[index]
        for _ in range(3):
            assert (await http.get(f"{access.url}/console/api/calls")).status == 200
        assert stored(store, token)["last_seen"] == seen  # type: ignore[index]
        move_back(store, token, last_seen=TOUCH_S + 1)
        assert (await http.get(f"{access.url}/console/api/me")).status == 200
        assert stored(store, token)["last_seen"] > seen  # type: ignore[index]


async def test_expired_sessions_are_purged_at_the_next_login(access: Access) -> None:
    store = access.context.store
    async with http_client() as idle, http_client() as old, http_client() as fresh:
        for http in (idle, old):
            await login(http, access.url, TRAINER_USER, TRAINER_PASSWORD)
        move_back(store, cookie_of(idle), last_seen=IDLE_S + 1)
        move_back(store, cookie_of(old), created_at=MAX_AGE_S + 1)
        await login(fresh, access.url, OPS_USER, OPS_PASSWORD)  # nobody uses the two again
        assert stored(store, cookie_of(idle)) is None and stored(store, cookie_of(old)) is None
        assert stored(store, cookie_of(fresh)) is not None


async def test_a_session_is_valid_on_every_instance_sharing_the_store(access: Access) -> None:
    """Two `ivr serve` instances behind a load balancer: one call log, two apps, each with
    its own store connection; a request may land on either."""
    assert access.settings.call_log is not None
    settings = replace(access.settings, call_log=replace(access.settings.call_log,
                                                         instance="access-b"))
    other = build_app(settings, access.services, access.root)
    async with serving(other) as other_url, http_client() as http, \
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as bare:
        csrf = await login(http, access.url, OPS_USER, OPS_PASSWORD)
        cookie = {"Cookie": f"{COOKIE}={cookie_of(http)}"}  # what the balancer passes on
        resp = await bare.get(f"{other_url}/console/api/me", headers=cookie)
        assert resp.status == 200
        assert await resp.json() == {"name": OPS_USER, "role": "ops", "csrf": csrf}
        resp = await bare.get(f"{other_url}/console/api/calls/{access.call}", headers=cookie)
        assert resp.status == 200
        resp = await bare.post(f"{other_url}/console/api/logout", headers=cookie)
        assert resp.status == 403  # the CSRF check holds there too
        resp = await bare.post(f"{other_url}/console/api/logout",
                               headers={**cookie, CSRF_HEADER: csrf})
        assert resp.status == 200
        # Logged out on the second: gone on the first as well.
        assert (await http.get(f"{access.url}/console/api/me")).status == 401
        assert (await bare.get(f"{other_url}/console/api/me", headers=cookie)).status == 401


# --- the admins' user API ---------------------------------------------------------------------
async def test_admins_manage_users_and_each_change_ends_that_users_sessions(
        access: Access) -> None:
    url, accounts = f"{access.url}/console/api/users", access.context.accounts
    async with http_client() as admin, http_client() as carol:
        csrf = await login(admin, access.url, ADMIN_USER, ADMIN_PASSWORD)

        async def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            resp = await admin.post(url, json=body, headers={CSRF_HEADER: csrf})
            return resp.status, await resp.json()

        async def carol_is(status: int) -> None:
            assert (await carol.get(f"{access.url}/console/api/me")).status == status

        status, body = await post({"name": "carol", "role": "trainer",
                                   "password": "first-password"})
        assert status == 201 and body["created"] is True
        assert body["user"] == {"name": "carol", "role": "trainer", "disabled": False,
                                "created_at": body["user"]["created_at"], "last_login": None}
        for bad in ({"name": "carol", "role": "root"}, {"name": "dave", "role": "ops"},
                    {"name": "carol", "password": "short"}, {"name": "carol"},
                    {"name": "no spaces", "role": "ops", "password": "long enough"},
                    {"name": "carol", "disabled": "yes"}):
            assert (await post(bad))[0] == 400, bad

        await login(carol, access.url, "carol", "first-password")
        await post({"name": "carol", "role": "ops"})  # a new role ends her session
        await carol_is(401)
        await login(carol, access.url, "carol", "first-password")
        await post({"name": "carol", "password": "second-password"})  # so does a reset
        await carol_is(401)
        resp = await carol.post(f"{access.url}/console/api/login",
                                json={"name": "carol", "password": "first-password"})
        assert resp.status == 401
        await login(carol, access.url, "carol", "second-password")
        assert (await post({"name": "carol", "disabled": True}))[0] == 200  # and disabling
        await carol_is(401)
        resp = await carol.post(f"{access.url}/console/api/login",
                                json={"name": "carol", "password": "second-password"})
        assert resp.status == 403 and "disabled" in (await resp.json())["error"]
        await post({"name": "carol", "disabled": False})
        await login(carol, access.url, "carol", "second-password")
        await carol_is(200)

        listing = await admin.get(url)
        assert "scrypt" not in await listing.text()  # never a hash
        users = {u["name"]: u for u in (await listing.json())["users"]}
        assert set(users["carol"]) == {"name", "role", "disabled", "created_at", "last_login"}
        assert users["carol"]["role"] == "ops" and users["carol"]["last_login"] is not None
        assert users[ADMIN_USER]["role"] == ADMIN

    changes = [(a["user"], a["action"], a["detail"]) for a in accounts.audit_log()
               if a["action"].startswith("user_") and "carol" in a["detail"]]
    assert changes == [(ADMIN_USER, "user_create", "carol (trainer)"),
                       (ADMIN_USER, "user_role", "carol: trainer -> ops"),
                       (ADMIN_USER, "user_password", "carol"),
                       (ADMIN_USER, "user_disable", "carol"),
                       (ADMIN_USER, "user_enable", "carol")]


async def test_the_last_admin_cannot_be_demoted_or_disabled(access: Access) -> None:
    url = f"{access.url}/console/api/users"
    async with http_client() as admin:
        csrf = await login(admin, access.url, ADMIN_USER, ADMIN_PASSWORD)

        async def post(body: dict[str, Any]) -> int:
            resp = await admin.post(url, json=body, headers={CSRF_HEADER: csrf})
            return resp.status

        for change in ({"role": "trainer"}, {"disabled": True}):
            assert await post({"name": ADMIN_USER, **change}) == 409
        assert (await admin.get(url)).status == 200  # still an admin, still logged in
        assert await post({"name": "bea", "role": ADMIN, "password": "another-admin"}) == 201
        assert await post({"name": "bea", "disabled": True}) == 200  # ada is left
        assert await post({"name": ADMIN_USER, "role": "trainer"}) == 409  # bea is disabled
        assert await post({"name": "bea", "disabled": False}) == 200
        assert await post({"name": "bea", "role": "ops"}) == 200
    assert access.context.accounts.user(ADMIN_USER)["role"] == ADMIN  # type: ignore[index]


# --- the audit of recording access ------------------------------------------------------------
async def test_every_recording_access_writes_one_audit_row(access: Access) -> None:
    accounts = access.context.accounts
    call = log_call(access.context, "audited-call")
    base = f"{access.url}/console/api/calls/{call}"
    async with http_client() as ops, http_client() as trainer:
        csrf = await login(ops, access.url, OPS_USER, OPS_PASSWORD)
        await login(trainer, access.url, TRAINER_USER, TRAINER_PASSWORD)
        assert (await ops.get(base)).status == 200
        resp = await ops.get(f"{base}/audio")
        assert resp.status == 200 and len(await resp.read()) == 44 + 8000 * 4
        for byte_range in ("bytes=44-", "bytes=0-99"):  # a seek, a player's probe
            resp = await ops.get(f"{base}/audio", headers={"Range": byte_range})
            assert resp.status == 206
        resp = await ops.post(f"{base}/replay", json={"model": STUB_MODEL},
                              headers={CSRF_HEADER: csrf})
        assert resp.status == 200 and (await resp.json())["model"] == STUB_MODEL
        assert (await ops.get(f"{base}/audio")).status == 200  # again: another row
        # Not accesses to the recording: no rows.
        resp = await ops.post(f"{base}/replay", json={"model": "x"}, headers={CSRF_HEADER: csrf})
        assert resp.status == 400
        assert (await ops.get(f"{base}/models")).status == 200
        resp = await trainer.get(f"{access.url}/console/api/calls/{call[:8]}")  # by a prefix
        assert resp.status == 200
        shown = (await resp.json())["audit"]
    rows = [(a["user"], a["action"], a["call_id"], a["detail"]) for a in accounts.audit_log(call)]
    assert rows == [(OPS_USER, "view", call, None), (OPS_USER, "listen", call, None),
                    (OPS_USER, "listen", call, "bytes=44-"),
                    (OPS_USER, "listen", call, "bytes=0-99"), (OPS_USER, "replay", call, None),
                    (OPS_USER, "listen", call, None), (TRAINER_USER, "view", call, None)]
    assert [a["action"] for a in shown] == [r[1] for r in rows]  # the call page's access log


# --- the same on both stores (SQLite and PostgreSQL) ------------------------------------------
def test_sessions_are_shared_by_instances_on_either_store(store: CallStore) -> None:
    accounts = AccountStore(store.engine)
    accounts.set_user("olga", "ops", hash_password("password-1"))
    other = CallStore(store.url)  # the second instance's own connection pool
    try:
        session = Sessions().open(accounts, "olga", "ops")
        assert session.token and stored(store, session.token) is not None
        seen = Sessions().get(AccountStore(other.engine), session.token)
        assert seen is not None and (seen.user, seen.role, seen.csrf) == (
            "olga", "ops", session.csrf)
        assert accounts.user("olga")["last_login"] == session.created_at  # type: ignore[index]
        Sessions().close(AccountStore(other.engine), seen)
        assert Sessions().get(accounts, session.token) is None
    finally:
        other.close()


def test_user_changes_end_sessions_and_keep_an_admin_on_either_store(store: CallStore) -> None:
    sessions_, accounts = Sessions(), AccountStore(store.engine)
    accounts.set_user("ada", ADMIN, hash_password("password-1"))
    accounts.set_user("tom", "trainer", hash_password("password-2"))
    for change in ({"role": "ops"}, {"password_hash": hash_password("password-3")},
                   {"disabled": True}):
        role = accounts.user("tom")["role"]  # type: ignore[index]
        session = sessions_.open(accounts, "tom", role)
        accounts.save_user("tom", keep_role=ADMIN, by="ada", **change)
        assert sessions_.get(accounts, session.token) is None, change
    # A row left behind (say, written by an old version) is no key for a disabled user.
    with store.engine.begin() as db:
        db.execute(sessions.insert().values(token_hash=hashlib.sha256(b"t").hexdigest(),
                                            csrf="c", user="tom", role="ops", created_at=9e9,
                                            last_seen=9e9))
    assert sessions_.get(accounts, "t") is None
    for change in ({"role": "ops"}, {"disabled": True}):
        with pytest.raises(UserChangeRefused):
            accounts.save_user("ada", keep_role=ADMIN, by="ada", **change)
    assert accounts.user("ada")["role"] == ADMIN  # the refusal rolled back  # type: ignore[index]
    actions = [a["action"] for a in accounts.audit_log() if a["user"] == "ada"]
    assert actions == ["user_role", "user_password", "user_disable"]


def demote_both_at_once(accounts: AccountStore) -> list[str]:
    """Two admins (the only ones) demote each other in two threads; returns who was
    refused."""
    start = threading.Barrier(2)
    refused: list[str] = []

    def demote(name: str) -> None:
        start.wait()
        try:
            accounts.save_user(name, role="ops", keep_role=ADMIN)
        except UserChangeRefused:
            refused.append(name)

    threads = [threading.Thread(target=demote, args=(n,)) for n in ("ada", "bea")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return refused


def test_two_admins_demoting_each_other_at_once_leave_one(store: CallStore) -> None:
    """The last-admin check holds under concurrency: on PostgreSQL the admins' rows are
    locked first, on SQLite the write lock serialises the two."""
    accounts = AccountStore(store.engine)
    for _ in range(5):
        for name in ("ada", "bea"):
            accounts.set_user(name, ADMIN, "x")
        refused = demote_both_at_once(accounts)
        assert len(refused) == 1
        assert [u["name"] for u in accounts.list_users() if u["role"] == ADMIN] == refused


def test_the_login_throttle_counts_on_every_instance(store: CallStore) -> None:
    """Wrong passwords written by one instance slow the same source on another; other
    sources, and the source's own right password for another name, are not held up."""
    other, throttle, now = CallStore(store.url), LoginThrottle(trusted_proxies=""), time.time()
    policy = throttle.policy
    try:
        for i in range(policy.per_name_free):
            attempt = throttle.begin(store if i % 2 else other, "203.0.113.7", "ada", now)
            assert attempt.row is not None and not attempt.wait_s
        later = now + 0.5  # within the first wait (1 s)
        for instance in (store, other):  # (the next try at "ada" from there must wait)
            assert throttle.begin(instance, "203.0.113.7", "ada", later).wait_s > 0
        assert throttle.failures(store, "203.0.113.7", "ada") == policy.per_name_free
        # Someone else's wrong passwords: ada's own right one from her own address goes on.
        mine = throttle.begin(other, "198.51.100.1", "ada", later)
        assert mine.row is not None and not mine.wait_s
        throttle.succeeded(store, mine)
        assert throttle.failures(store, "198.51.100.1") == 0
        # The guesser's source sprays other names: slowed past its own allowance.
        waits = [throttle.begin(store, "203.0.113.7", f"user{i}", later).wait_s
                 for i in range(policy.per_source_free)]
        assert waits[:policy.per_source_free - policy.per_name_free] == [0.0] * (
            policy.per_source_free - policy.per_name_free) and waits[-1] > 0
        # ... and the refused tries left no rows: waiting is not guessing.
        assert throttle.failures(other, "203.0.113.7") == policy.per_source_free
        # Old failures are forgotten after the window.
        gone = throttle.begin(store, "203.0.113.7", "ada", later + policy.window_s + 1)
        assert gone.row is not None and not gone.wait_s
    finally:
        other.close()


def test_the_throttle_waits_double_and_the_source_is_the_peer_unless_proxied() -> None:
    policy = Policy(per_source_free=2, per_name_free=1, max_wait_s=60)
    assert [policy.wait(n, 2, 100.0, 100.0) for n in range(8)] == [0, 0, 1, 2, 4, 8, 16, 32]
    assert policy.wait(20, 2, 100.0, 100.0) == 60  # capped
    assert policy.wait(3, 2, 100.0, 101.5) == 0.5  # the wait runs from the last failure
    assert Attempt("s", "n", None, 0.2).retry_after == "1"
    assert Attempt("s", "n", None, 2.1).retry_after == "3"
    # X-Forwarded-For counts only from a trusted proxy, and only its own (right-most) hop.
    assert LoginThrottle(trusted_proxies="").source("127.0.0.1", "203.0.113.9") == "127.0.0.1"
    proxied = LoginThrottle(trusted_proxies="10.0.0.0/8, 127.0.0.1")
    assert proxied.source("10.1.2.3", "6.6.6.6, 203.0.113.9, 10.0.0.2") == "203.0.113.9"
    assert proxied.source("192.0.2.1", "203.0.113.9") == "192.0.2.1"  # not a proxy of ours
    assert proxied.source("127.0.0.1", "not-an-address") == "127.0.0.1"
    # One IPv6 host holds a /64: its addresses are one source.
    assert source_key("2001:db8:1:2:3:4:5:6") == source_key("2001:db8:1:2::99") == \
        "2001:db8:1:2::/64"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"


@contextlib.contextmanager
def sources_by_forwarded_for(access: Access) -> Iterator[None]:
    """Let the tests speak for several sources through X-Forwarded-For (as if the test
    client were a trusted proxy); afterwards every try counted is forgotten, so that
    other tests' logins from 127.0.0.1 are not held up."""
    throttle = access.app[THROTTLE]
    throttle.trusted = parse_networks("127.0.0.1")
    try:
        yield
    finally:
        throttle.trusted = ()
        with access.context.store.engine.begin() as db:
            db.execute(login_attempts.delete())


async def try_login(http: aiohttp.ClientSession, access: Access, name: str, password: str,
                    source: str | None = None) -> aiohttp.ClientResponse:
    headers = {"X-Forwarded-For": source} if source else {}
    resp = await http.post(f"{access.url}/console/api/login",
                           json={"name": name, "password": password}, headers=headers)
    await resp.read()
    return resp


async def test_someone_elses_wrong_passwords_never_lock_a_user_out(access: Access) -> None:
    """The old lockout refused the right password after five wrong ones from anywhere."""
    with sources_by_forwarded_for(access):
        async with http_client() as mallory, http_client() as ada:
            statuses = [(await try_login(mallory, access, ADMIN_USER, f"guess-{i}",
                                         "203.0.113.7")).status for i in range(12)]
            assert statuses[:3] == [401] * 3 and statuses[-1] == 429, statuses
            # The guesser's own source still waits, even with the right password (asked at
            # once: the wait is seconds, and a loaded machine's password checks take that).
            resp = await try_login(mallory, access, ADMIN_USER, ADMIN_PASSWORD, "203.0.113.7")
            assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
            resp = await try_login(ada, access, ADMIN_USER, ADMIN_PASSWORD, "198.51.100.1")
            assert resp.status == 200


async def test_a_source_spraying_many_names_is_refused_quickly(access: Access) -> None:
    """The probe's 371 logins over many names in 15 s were all answered."""
    free = access.app[THROTTLE].policy.per_source_free
    with sources_by_forwarded_for(access):
        async with http_client() as http:
            statuses = []
            for i in range(30):
                resp = await try_login(http, access, f"name{i}", "password", "203.0.113.8")
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) >= 1
                    assert "try again" in (await resp.json())["error"]
            # (one or two more may be answered on a machine so loaded that a password
            # check outlasts the first waits of 1 and 2 s)
            assert statuses[:free] == [401] * free
            assert statuses.count(401) <= free + 3 and statuses[-1] == 429, statuses
            # Another source is not held up by it, and no name is locked for it.
            assert (await try_login(http, access, OPS_USER, OPS_PASSWORD, "198.51.100.2")
                    ).status == 200
    # Without a trusted proxy, a made-up X-Forwarded-For is no way out of one's own count.
    try:
        async with http_client() as http:
            statuses = [(await try_login(http, access, f"n{i}", "pw", f"192.0.2.{i}")).status
                        for i in range(free + 5)]
        assert statuses[-1] == 429, statuses
    finally:
        with access.context.store.engine.begin() as db:
            db.execute(login_attempts.delete())


# --- what requests may say: numbers, and what errors may show ----------------------------------
BAD_NUMBERS = ("nan", "NaN", "inf", "-inf", "-1", "1e309", "1e12", "x", "0x10")


async def test_bad_numbers_in_query_parameters_are_a_400_naming_them(access: Access) -> None:
    """``limit=nan`` and ``days=nan`` were 500s, ``hours=nan`` a ``NaN`` in the JSON."""
    async with http_client() as trainer:
        csrf = await login(trainer, access.url, TRAINER_USER, TRAINER_PASSWORD)
        base = f"{access.url}/console/api"
        routes = {"calls": ("limit", "offset", "since", "until"), "figures": ("hours",),
                  "trends?locale=ko": ("days",), "review?locale=ko": ("hours",),
                  "review/clusters/c0?locale=ko": ("hours",)}
        for route, names in routes.items():
            for name in names:
                for value in BAD_NUMBERS:
                    if name in ("since", "until") and value == "1e12":
                        continue  # (a time: 1e12 is the bound itself)
                    sep = "&" if "?" in route else "?"
                    resp = await trainer.get(f"{base}/{route}{sep}{name}={value}")
                    assert resp.status == 400, (route, name, value, resp.status)
                    assert name in (await resp.json())["error"], (route, name, value)
        for good in ("calls?limit=500&offset=0&since=0", "figures?hours=0.5",
                     "trends?locale=ko&days=366", "calls?limit=7.0"):
            resp = await trainer.get(f"{base}/{good}")
            assert resp.status == 200, good
            assert "NaN" not in await resp.text()
        assert (await trainer.get(f"{base}/calls?limit=2.5")).status == 400  # a whole number
        # The same helper reads a JSON body's hours (a cluster id is resolved in a period).
        for hours in (float("nan"), float("inf"), -5, "168", True):
            resp = await trainer.post(f"{base}/review/label", headers={CSRF_HEADER: csrf},
                                      json={"locale": "ko", "target": "c0", "intent": "x",
                                            "hours": hours})
            assert resp.status == 400 and "hours" in (await resp.json())["error"], hours


async def test_error_messages_name_project_paths_never_the_servers_folders(
        access: Access) -> None:
    """A live pointer naming a missing model: the message named models/live.yml by its
    absolute path on the server."""
    models = access.root / "models"
    models.mkdir(exist_ok=True)
    candidate, pointer = models / "ko-candidate.tar.gz", models / "live.yml"
    before = pointer.read_text(encoding="utf-8") if pointer.is_file() else None
    candidate.write_bytes(b"")
    pointer.write_text("ko: ko-gone.tar.gz\n", encoding="utf-8")
    try:
        async with http_client() as trainer:
            csrf = await login(trainer, access.url, TRAINER_USER, TRAINER_PASSWORD)
            resp = await trainer.post(f"{access.url}/console/api/compare",
                                      headers={CSRF_HEADER: csrf},
                                      json={"locale": "ko", "model": candidate.name})
            error = (await resp.json())["error"]
            assert resp.status == 400 and "models/live.yml names ko-gone.tar.gz" in error
            assert str(access.root) not in error and str(access.root.parent) not in error
    finally:
        candidate.unlink()
        if before is None:
            pointer.unlink()
        else:
            pointer.write_text(before, encoding="utf-8")
    assert shown(access.root / "nlu_data" / "ko" / "banking.yml") == "nlu_data/ko/banking.yml"
    assert shown("/etc/ivr/secret.yml") == "secret.yml" and shown("a/b.yml") == "a/b.yml"
