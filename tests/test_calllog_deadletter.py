"""One long or unstorable value must never stall the call log (issue 13): caller ids up to
255 characters (a SIP URI) are kept in full, longer ones cut at the edge and at the store;
an event the store refuses for good is set aside as a dead letter and everything behind it
is written; errors that pass (the database down) are still retried, nothing lost; and
PostgreSQL tables an older version made with narrower columns are widened at start.
Every test runs on SQLite and on the machine's PostgreSQL server."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from conftest import KNOWN
from phones import PlainPhone, TwilioPhone, serving

from ivr.calllog.recorder import CallLogSettings, CallRecorder
from ivr.calllog.store import CallStore
from ivr.cli import main
from ivr.core.events import (
    CallEnded,
    CallEvent,
    CallStarted,
    PromptPlayed,
    TimerFired,
    TranscriptFinal,
    TurnTaken,
    UnknownEvent,
)
from ivr.dialogue.call import Call
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import CALL_LOG, GATEWAY
from ivr.voice.asr import ScriptedRecognizer
from ivr.voice.metrics import Metrics
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

SIP = "sip:+8613800000001@trunk.bank.example.com"  # 41 characters: the caller id that stalled
TOKEN = "deadletter-test-token"


def _call(recorder: CallRecorder, call_id: str, caller: str = KNOWN) -> None:
    recorder.record(CallStarted(call_id=call_id, transport="websocket", caller=caller,
                                locale="zh", model="zh-x.tar.gz"))
    recorder.record(TurnTaken(call_id=call_id, n=1, input={"say": "查余额"}))
    recorder.record(CallEnded(call_id=call_id, outcome="hangup", caller=caller))


WHOLE_CALL = [(1, CallStarted), (2, TurnTaken), (3, CallEnded)]  # as _call records it


def _logged(store: CallStore, call_id: str) -> list[tuple[int | None, type[CallEvent]]]:
    return [(e.seq, type(e)) for e in store.events(call_id)]


class Gated:
    """The real store, whose first write waits until the test opens the gate, so that what
    is recorded meanwhile is written as one batch behind it."""

    def __init__(self, store: CallStore) -> None:
        self.store = store
        self.gate = threading.Event()

    def write(self, batch: Any, instance: str) -> None:
        self.gate.wait()
        self.store.write(batch, instance)

    def write_dead_letter(self, *args: Any) -> None:
        self.store.write_dead_letter(*args)


def test_a_sip_uri_caller_is_kept_in_full_and_a_10_kib_one_cut_to_the_column(
        store: CallStore, recorder: CallRecorder) -> None:
    """The store's own defence: even a caller id that no edge cut (an event straight from
    code) never fails the write of its batch."""
    _call(recorder, "sip", SIP)
    _call(recorder, "huge", "9" * 10240)
    _call(recorder, "later")
    assert recorder.flush(timeout_s=10), "the call log stalled"
    assert store.find_call("sip")["caller"] == SIP
    assert store.find_call("huge")["caller"] == "9" * 255
    start = store.events("huge")[0]
    assert isinstance(start, CallStarted) and len(start.caller or "") == 10240  # kept in full
    for call_id in ("sip", "huge", "later"):
        assert store.find_call(call_id)["status"] == "complete"
        assert _logged(store, call_id) == WHOLE_CALL
    assert store.list_calls()[0]["call_id"] == "later"
    assert recorder.healthy and recorder.dead_letters == 0 and recorder.written == 9


def test_events_the_store_refuses_are_dead_lettered_and_the_rest_written(
        store: CallStore, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    gated = Gated(store)
    recorder = CallRecorder(gated, "engine-a")  # type: ignore[arg-type]
    metrics = Metrics()
    metrics.watch_call_log(recorder)
    _call(recorder, "first")  # its write waits at the gate: the rest queue up behind it
    time.sleep(0.1)
    recorder.record(CallStarted(call_id="bad", caller=KNOWN))
    # Text no driver can encode (a lone surrogate, as JSON "\ud800" decodes to)...
    recorder.record(TurnTaken(call_id="bad", n=1, input={"say": "查\ud800余额"}))
    recorder.record(TurnTaken(call_id="bad", n=2, input={"say": "信用卡"}))
    # ... an event breaking a constraint (no time) ...
    recorder.record(TimerFired(call_id="bad", timer="no_input", at=None))  # type: ignore[arg-type]
    # ... and a kind longer than its column (a newer engine's kind, read and written back:
    # PostgreSQL refuses it; SQLite keeps it).
    recorder.record(UnknownEvent(call_id="bad", name="x" * 10240))
    recorder.record(CallEnded(call_id="bad", outcome="hangup"))
    for n in range(3):
        _call(recorder, f"later-{n}")
    gated.gate.set()
    assert recorder.flush(timeout_s=10), "the call log stalled"

    postgres = store.dialect == "postgresql"
    refused = [2, 4] + ([5] if postgres else [])
    kept = [(1, CallStarted), (3, TurnTaken)] + ([] if postgres else [(5, UnknownEvent)]) + [
        (6, CallEnded)]
    assert _logged(store, "bad") == kept
    if not postgres:
        unknown = store.events("bad")[2]
        assert isinstance(unknown, UnknownEvent) and unknown.name == "x" * 10240
    assert store.find_call("bad")["status"] == "complete"
    for call_id in ("first", "later-0", "later-1", "later-2"):
        assert _logged(store, call_id) == WHOLE_CALL
    assert recorder.healthy and recorder.pending == 0
    assert recorder.dead_letters == len(refused) and recorder.dead_letters_unsaved == 0
    assert metrics.registry.get_sample_value("ivr_call_log_dead_letters_total") == len(refused)

    letters = sorted(store.dead_letters(), key=lambda row: row["seq"])
    assert [(d["call_id"], d["seq"]) for d in letters] == [("bad", n) for n in refused]
    surrogate, no_time = letters[0], letters[1]
    assert surrogate["kind"] == "turn" and surrogate["error"].startswith("UnicodeEncodeError")
    assert json.loads(surrogate["data"])["data"]["input"]["say"] == "查\ud800余额"
    assert no_time["kind"] == "timer" and no_time["error"].startswith("IntegrityError")
    assert no_time["event_at"] is None and not no_time["truncated"]
    if postgres:
        assert letters[2]["kind"] == "x" * 255 and letters[2]["error"].startswith("DataError")
    recorder.close()

    monkeypatch.setenv("IVR_CALL_LOG", store.url)
    assert main(["calls", "dead-letters"]) == 0
    out = capsys.readouterr().out
    assert "call bad  event #2 turn  UnicodeEncodeError" in out
    assert f"({len(refused)} events set aside" in out
    assert main(["calls", "dead-letters", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["seq"] for r in rows) == refused


def test_values_json_cannot_hold_are_set_aside_or_kept_as_text(
        store: CallStore, recorder: CallRecorder) -> None:
    """A turn whose fields hold what JSON cannot: a circular value is refused for good and
    set aside as its repr; values JSON has no type for are logged as their text; a NUL is
    escaped in the JSON and read back as it was."""
    circular: dict[str, Any] = {"say": "查余额"}
    circular["self"] = circular
    recorder.record(CallStarted(call_id="odd", caller=KNOWN))
    recorder.record(TurnTaken(call_id="odd", n=1, input=circular))
    recorder.record(TurnTaken(call_id="odd", n=2, input={"say": "信用卡"},
                              slots={"due": datetime.date(2024, 1, 2), "seen": {3}}))
    recorder.record(TurnTaken(call_id="odd", n=3, input={"say": "挂\x00失"}))
    recorder.record(CallEnded(call_id="odd", outcome="hangup"))
    assert recorder.flush(timeout_s=10), "the call log stalled"

    assert _logged(store, "odd") == [(1, CallStarted), (3, TurnTaken), (4, TurnTaken),
                                     (5, CallEnded)]
    as_text, with_nul = store.events("odd")[1:3]
    assert isinstance(as_text, TurnTaken) and as_text.slots == {"due": "2024-01-02",
                                                                "seen": "{3}"}
    assert isinstance(with_nul, TurnTaken) and with_nul.input == {"say": "挂\x00失"}
    (letter,) = store.dead_letters()
    assert (letter["call_id"], letter["seq"], letter["kind"]) == ("odd", 2, "turn")
    assert letter["error"].startswith("ValueError: Circular reference")
    assert "查余额" in json.loads(letter["data"])["repr"]  # what could be kept of it
    assert recorder.healthy and recorder.dead_letters == 1


@pytest.mark.fault("call-log store failing while an event is refused")
def test_errors_that_pass_are_still_retried_around_a_dead_letter_and_nothing_is_lost(
        store: CallStore) -> None:
    """The database goes away mid-batch (a write, then a dead letter's write, fail with
    connection errors): those are retried as before; only the refused event is set aside."""
    down = sa.exc.OperationalError("insert", {}, Exception("server closed the connection"))
    gone = sa.exc.InterfaceError("insert", {}, Exception("connection already closed"))

    class Flaky:
        def __init__(self) -> None:
            self.write_failures = [down, down]
            self.letter_failures = [gone, sa.exc.DisconnectionError("connection lost")]
            self.failing_seen = False

        def write(self, batch: Any, instance: str) -> None:
            if self.write_failures:
                raise self.write_failures.pop()
            store.write(batch, instance)

        def write_dead_letter(self, *args: Any) -> None:
            if self.letter_failures:
                self.failing_seen |= recorder.failing_since is not None
                raise self.letter_failures.pop()
            store.write_dead_letter(*args)

    flaky = Flaky()
    recorder = CallRecorder(flaky, "engine-a")  # type: ignore[arg-type]
    recorder.record(CallStarted(call_id="c1", caller=KNOWN))
    recorder.record(TranscriptFinal(call_id="c1", text="\udc80"))
    recorder.record(CallEnded(call_id="c1", outcome="hangup"))
    _call(recorder, "c2")
    assert recorder.flush(timeout_s=15), "the call log stalled"
    assert not flaky.write_failures and not flaky.letter_failures
    assert flaky.failing_seen  # the dead letter's outage showed as a failing store...
    assert recorder.healthy  # ... until it was written
    assert _logged(store, "c1") == [(1, CallStarted), (3, CallEnded)]
    assert _logged(store, "c2") == WHOLE_CALL
    assert [(d["call_id"], d["seq"]) for d in store.dead_letters()] == [("c1", 2)]
    assert recorder.dead_letters == 1 and recorder.written == 5
    recorder.close()


def test_an_event_not_even_its_dead_letter_takes_is_logged_and_the_rest_written(
        store: CallStore, caplog: pytest.LogCaptureFixture) -> None:
    class Refusing:  # the dead letters' table refuses this event too, for good
        def write(self, batch: Any, instance: str) -> None:
            store.write(batch, instance)

        def write_dead_letter(self, *args: Any) -> None:
            raise sa.exc.IntegrityError("insert", {}, Exception("refused"))

    recorder = CallRecorder(Refusing(), "engine-a")  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="ivr.calllog.recorder"):
        recorder.record(CallStarted(call_id="c1", caller=KNOWN))
        recorder.record(PromptPlayed(call_id="c1", text="\ud800"))
        recorder.record(CallEnded(call_id="c1", outcome="hangup"))
        _call(recorder, "c2")
        assert recorder.flush(timeout_s=10), "the call log stalled"
    assert _logged(store, "c1") == [(1, CallStarted), (3, CallEnded)]
    assert _logged(store, "c2") == WHOLE_CALL
    assert recorder.healthy and recorder.dead_letters == recorder.dead_letters_unsaved == 1
    lost = [r.getMessage() for r in caplog.records if "not set aside" in r.getMessage()]
    assert len(lost) == 1 and lost[0].startswith("call c1: prompt event #2 refused")
    recorder.close()


def test_old_postgres_tables_with_narrow_columns_are_widened_at_start(
        postgres_log: str) -> None:
    """The tables as an older version made them (caller varchar(32), ids varchar(64)),
    opened by three engines at once: the columns are widened, once, and a SIP URI caller
    is logged."""
    old = sa.MetaData()
    sa.Table("calls", old, sa.Column("call_id", sa.String(64), primary_key=True),
             sa.Column("started_at", sa.Float, nullable=False),
             sa.Column("status", sa.String(16), nullable=False),
             sa.Column("caller", sa.String(32)), sa.Column("transport", sa.String(32)))
    sa.Table("events", old, sa.Column("call_id", sa.String(64), primary_key=True),
             sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("at", sa.Float, nullable=False),
             sa.Column("kind", sa.String(32), nullable=False),
             sa.Column("data", sa.Text, nullable=False))
    engine = sa.create_engine(postgres_log)
    old.create_all(engine)
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO calls VALUES ('old', 1, 'complete', '+86138', 'x')"))

    stores: list[CallStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            stores.append(CallStore(postgres_log))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(stores) == 3
    with engine.connect() as db:
        lengths = dict(db.execute(sa.text(
            "SELECT table_name || '.' || column_name, character_maximum_length"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name IN ('calls', 'events')"
            " AND data_type = 'character varying'")).all())
    engine.dispose()
    for column in ("calls.call_id", "calls.caller", "calls.transport", "events.call_id",
                   "events.kind"):
        assert lengths[column] == 255, column
    assert lengths["calls.status"] == 16  # as long as it should be: left alone

    recorder = CallRecorder(stores[0], "engine-a")
    _call(recorder, "sip", SIP)
    assert recorder.flush(timeout_s=10), "the call log stalled"
    assert stores[1].find_call("sip")["caller"] == SIP
    assert stores[2].find_call("old")["caller"] == "+86138"  # the old rows as they were
    assert recorder.healthy and recorder.dead_letters == 0
    recorder.close()
    for store in stores:
        store.close()


# --- at the edge: what the transports and the commands take --------------------------------
def test_a_callers_id_from_the_command_line_is_cut_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    """``ivr chat --caller``, a simulate script: the dialogue's own call cuts it."""
    with caplog.at_level(logging.WARNING):
        call = Call(None, caller_id=SIP)  # type: ignore[arg-type]  # (no turn taken)
        assert call.caller_id == SIP and not caplog.records
        call = Call(None, caller_id="+86\x00138" + "0" * 10240 + "\ud800")  # type: ignore[arg-type]
    assert call.caller_id == "+86138" + "0" * 249
    assert "caller id of 10246 characters cut to 255" in caplog.text


@pytest.fixture
async def server(engine: Any, project: Any, store_url: str,
                 tmp_path: Path) -> AsyncIterator[Any]:
    services = VoiceServices(
        engines={"zh": engine}, locales=load_voice_locales(project.root / "locales"),
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda loc: ScriptedRecognizer([]), default_locale="zh",
        settings=VoiceSettings(no_input_ms=4000, playback_grace_s=0.5))
    log = CallLogSettings(url=store_url, recordings=None, instance="deadletter-test")
    app = build_app(ServerSettings(audiosocket_port=-1, ws_token=TOKEN, call_log=log),
                    services)
    async with serving(app) as url:
        yield app, url


async def test_callers_on_the_plain_socket_are_logged_a_long_one_cut_and_health_stays_ok(
        server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Calls on a real server, one after the other: a SIP URI caller, a 10 KiB one with a
    character no store can encode (plain socket), a 300-character one (Twilio's
    customParameters), an ordinary one. Before the fix the first stalled the log on
    PostgreSQL, the second on both stores, and no later call was logged."""
    app, url = server
    ws_url = url.replace("http", "ws")
    callers = [SIP, "sip:" + "8" * 10240 + "\ud800@x", "tel:" + "7" * 296, KNOWN]
    with caplog.at_level(logging.WARNING, logger="ivr.core.events"):
        for n, caller in enumerate(callers):
            phone: PlainPhone | TwilioPhone
            if n == 2:
                phone = await TwilioPhone().connect(f"{ws_url}/twilio", caller=caller,
                                                    locale="zh")
            else:
                phone = await PlainPhone().connect(f"{ws_url}/ws", TOKEN, caller=caller,
                                                   locale="zh")
            await phone.wait_prompts(1)
            await phone.hangup()
            await phone.wait_closed(30)
    assert "websocket caller id of 10246 characters cut to 255" in caplog.text
    assert "twilio caller id of 300 characters cut to 255" in caplog.text
    gateway, recorder = app[GATEWAY], app[CALL_LOG]
    while len(gateway.results) < len(callers):
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(recorder.flush, 10), "the call log stalled"
    ids = [r.call_id for r in gateway.results]
    rows = [recorder.store.find_call(call_id) for call_id in ids]
    assert [r["caller"] for r in rows] == [SIP, "sip:" + "8" * 251, "tel:" + "7" * 251, KNOWN]
    assert all(r["status"] == "complete" for r in rows)

    async def health() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as response:
            return await response.json()

    assert (await health())["status"] == "ok"
    assert (await health())["call_log"]["dead_letters"] == 0
    recorder.record(CallStarted(call_id="refused", caller="\udfff"))  # not via the edge
    assert await asyncio.to_thread(recorder.flush, 10), "the call log stalled"
    now = await health()
    assert now["status"] == "ok" and now["call_log"]["ok"]
    assert now["call_log"]["dead_letters"] == 1
