"""Call ids from the wire are data, never names (issue 13, items 1, 2 and 6).

The plain socket's ``call_id``, Twilio's ``callSid`` and AudioSocket's UUID are untrusted:
the engine names every call itself (uuid4 hex) and keeps the wire value, cleaned, only as
the call's ``external_id``. Real sockets on all three protocols (the gateway's test server
and phones), the call log on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
import test_gateway
from conftest import KNOWN, VIP
from phones import (
    AsteriskPhone,
    PlainPhone,
    TwilioPhone,
    register_asterisk_call,
    serving,
    silence,
    twilio_signed,
)
from test_gateway import SPEECH, TOKEN, TWILIO_TOKEN, Server

from ivr.calllog.recorder import CallLogSettings, CallRecorder
from ivr.calllog.store import AmbiguousCall, CallNotFound, CallStore
from ivr.core.events import (
    AgentFeedback,
    CallEnded,
    CallStarted,
    TurnTaken,
    UnknownEvent,
    VerificationChanged,
    kind_of,
)
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import CALL_LOG
from ivr.telephony import external_reference
from ivr.voice.asr import ScriptedRecognizer
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

voice = test_gateway.server  # the gateway tests' server (all three protocols), here too
ENGINE_ID = re.compile(r"[0-9a-f]{32}")
PIN_PROMPT = "请输入您的6位电话银行密码，以井号键结束。"


def test_a_wire_id_is_kept_as_a_cleaned_reference() -> None:
    assert external_reference("CA0123") == "CA0123"
    # NUL, newlines, ESC (terminal escapes are left harmless), bidi and zero-width marks
    assert external_reference("a\x00b\nc\r\x1b[2Jd\u202ee\u200bf") == "abc[2Jdef"
    assert external_reference("x" * 10240) == "x" * 255
    assert external_reference("  \x00\t") is None and external_reference(None) is None
    assert external_reference("lone\ud800surrogate") == "lonesurrogate"  # no store takes it
    # Look-alikes are text, kept as sent (they are never a path, so they need no care).
    assert external_reference("．．／∕") == "．．／∕"


def _files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``folder`` (but the top-level names starting with ``skip``), by
    path, with a hash of its content."""
    if not folder.is_dir():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.relative_to(folder).parts[0].startswith(skip) or (
                p.name.startswith(".") and p.name.endswith(".tmp")):  # a cache write under way
            continue
        try:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
        except (IsADirectoryError, FileNotFoundError):  # a folder; a temporary file gone
            continue
    return out


def _prompts_unchanged(before: dict[str, dict[str, str]], project_root: Path) -> None:
    """No prompt file changed or appeared, but cache entries TTS writes by hash."""
    for name, files in before.items():
        after = _files(project_root / name)
        assert {k: after.get(k) for k in files} == files, f"{name} changed"
        assert all(re.fullmatch(r"[0-9a-f]{24}\.pcm", k) for k in set(after) - set(files)), (
            set(after) - set(files))


async def _logged(server: Server, external_id: str, count: int,
                  timeout: float = 30) -> list[dict[str, Any]]:
    """The ``count`` results (wait for them) of calls whose external id is ``external_id``,
    once all their events are written."""
    for _ in range(int(timeout / 0.05)):
        found = [r.as_dict() for r in server.gateway.results if r.external_id == external_id]
        if len(found) >= count:
            assert server.recorder and server.recorder.flush()
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} calls with external id {external_id!r} did not end")


async def test_no_id_from_the_plain_socket_or_twilio_names_a_file(
        voice: Server, project: Any, tmp_path: Path) -> None:
    """The probe's ``call_id: "../../<path>/prompts/ko/utter_greet"`` wrote a WAV over a
    prompt. Now no wire id reaches a path: each call is recorded under the engine's id,
    inside the recordings folder, and the id sent is its external id."""
    assert voice.recorder and voice.recorder.recordings
    recordings = voice.recorder.recordings.resolve()
    outside = recordings.parent  # where ../../ from recordings/<date>/ leads
    canary = outside / f"canary-{uuid.uuid4().hex[:8]}"
    greeting = canary / "prompts" / "ko" / "utter_greet.wav"
    greeting.parent.mkdir(parents=True)
    greeting.write_bytes(b"RIFF the bank's own greeting")
    absolute = tmp_path / "elsewhere" / "prompts" / "ko" / "utter_greet"
    hostile = {  # what is sent -> the external id kept
        f"../../{canary.name}/prompts/ko/utter_greet": None,
        str(absolute): None,
        f"../../{canary.name}/nul\x00.wav": f"../../{canary.name}/nul.wav",
        "../" * 3413 + "x": ("../" * 3413)[:255],  # 10 KiB
        f"．．／．．／{canary.name}／prompts／ko／utter_greet": None,  # fullwidth
        f"..∕..∕{canary.name}∕prompts∕ko∕utter_greet": None,  # division slash
        f"..\\..\\{canary.name}\\prompts\\ko\\utter_greet": None,
    }
    before_outside = _files(outside, skip=("calls.sqlite3", recordings.name))
    before_prompts = {name: _files(project.root / name) for name in ("prompts",
                                                                     ".cache/prompts")}
    twilio_url = f"{voice.ws_url}/twilio"

    async def call(phone: PlainPhone | TwilioPhone, wire_id: str) -> None:
        if isinstance(phone, PlainPhone):
            await phone.connect(f"{voice.ws_url}/ws", TOKEN, caller=KNOWN, locale="zh",
                                call_id=wire_id)
        else:
            await phone.connect(twilio_url, caller=KNOWN, locale="zh", call_sid=wire_id,
                                headers=twilio_signed(twilio_url, TWILIO_TOKEN))
        await phone.wait_prompts(1)  # the notice: prompt audio, so the recording has some
        await phone.say(silence(300), tail_ms=0)  # the caller's clock, which writes it
        await phone.hangup()
        await phone.wait_closed(30)

    await asyncio.gather(*(call(kind(), wire_id) for wire_id in hostile
                           for kind in (PlainPhone, TwilioPhone)))
    for _ in range(200):  # each call's end, once the phones are gone
        if not voice.gateway.live:
            break
        await asyncio.sleep(0.05)
    written = voice.recorder.flush()  # every event and all audio
    assert greeting.read_bytes() == b"RIFF the bank's own greeting"
    assert not (tmp_path / "elsewhere").exists()
    assert _files(outside, skip=("calls.sqlite3", recordings.name)) == before_outside
    _prompts_unchanged(before_prompts, project.root)
    assert written  # (a NUL in a file name once killed the log's writer thread)

    store = voice.recorder.store
    for wire_id, kept in hostile.items():
        kept = kept or wire_id
        results = await _logged(voice, kept, 2)
        assert sorted(r["transport"] for r in results) == ["twilio", "websocket"]
        for result in results:
            call_id = result["call_id"]
            assert ENGINE_ID.fullmatch(call_id), call_id  # the engine's own name
            row = store.find_call(call_id)
            assert (row["external_id"], row["transport"]) == (kept, result["transport"])
            assert [e.external_id for e in store.events(call_id)
                    if isinstance(e, CallStarted)] == [kept]
            assert row["recording"] == f"{time.strftime('%Y-%m-%d', time.gmtime())}/{call_id}.wav"
            assert (recordings / row["recording"]).is_file()
        # Two calls sent this id: it finds neither, and says how to name one.
        with pytest.raises(AmbiguousCall) as refused:
            store.find_call(kept)
        assert all(r["call_id"] in str(refused.value) for r in results)


async def test_an_asterisk_uuid_used_again_is_a_new_call_that_leaves_the_first_alone(
        voice: Server) -> None:
    """Over unauthenticated AudioSocket, reusing a VIP call's UUID blanked its caller and
    rewrote its outcome, end and recording. The UUID stays the registration's key (what
    Asterisk knows); the calls are two, each logged whole under its own id."""
    assert voice.recorder
    store = voice.recorder.store
    call_uuid = str(uuid.uuid4())

    async def call(register: bool) -> None:
        if register:
            await register_asterisk_call(voice.url, TOKEN, call_uuid, VIP, "zh")
        phone = await AsteriskPhone().connect(*voice.audiosocket, call_uuid=call_uuid)
        while phone.audio_bytes < 8000:  # into the notice
            await asyncio.sleep(0.02)
        await phone.say(silence(300), tail_ms=0)
        await phone.hangup()  # heard once the greeting is out (synthesised at first)
        await phone.wait_closed(60)

    await call(register=True)
    (vip,) = await _logged(voice, call_uuid, 1)
    first = store.find_call(vip["call_id"])
    first_events = store.events(vip["call_id"])
    recording = voice.recorder.recordings / first["recording"]
    first_audio = recording.read_bytes()
    assert (first["caller"], first["external_id"]) == (VIP, call_uuid)

    await call(register=False)  # the same UUID, no registration: no caller
    second = next(r for r in await _logged(voice, call_uuid, 2) if r["call_id"] != first[
        "call_id"])
    assert store.find_call(vip["call_id"]) == first  # caller, outcome, end: untouched
    assert store.events(vip["call_id"]) == first_events
    assert recording.read_bytes() == first_audio
    again = store.find_call(second["call_id"])
    assert ENGINE_ID.fullmatch(again["call_id"]) and again["call_id"] != call_uuid
    assert (again["caller"], again["external_id"], again["status"]) == ("", call_uuid,
                                                                        "complete")
    assert any(isinstance(e, CallEnded) for e in store.events(again["call_id"]))  # its own
    with pytest.raises(AmbiguousCall, match="name one by its call id"):
        store.find_call(call_uuid)


async def test_the_handoff_names_the_call_by_both_ids(voice: Server) -> None:
    """The bank's ACD correlates a handoff with its own call by the external id."""
    phone = await voice.plain(call_id="SIP-4711@pbx.bank.example")
    await phone.wait_prompts(2)
    await phone.dtmf("0")  # an agent, please
    await phone.wait_closed(30)
    (result,) = await _logged(voice, "SIP-4711@pbx.bank.example", 1)
    handoff = result["handoff"]
    assert (handoff["call_id"], handoff["external_id"]) == (result["call_id"],
                                                            "SIP-4711@pbx.bank.example")
    assert phone.end and phone.end["call_id"] == result["call_id"]  # the engine's name


def _voice_services(engine: Any, project: Any, scripts: list[list[str]]) -> VoiceServices:
    """A second engine instance's services: the same dialogue engine (as instances share
    Redis's conversations), scripted Mandarin listening (one script per call)."""
    locales = load_voice_locales(project.root / "locales")
    return VoiceServices(
        engines={"zh": engine}, locales={"zh": locales["zh"]},
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda locale: ScriptedRecognizer(scripts.pop(0) if scripts else [],
                                                         end_of_speech_ms=300),
        default_locale="zh", settings=VoiceSettings(no_input_ms=3000, inter_digit_ms=800,
                                                    playback_grace_s=0.5))


@pytest.fixture
async def instance_b(engine: Any, project: Any, store_url: str,
                     tmp_path: Path) -> AsyncIterator[tuple[str, list[list[str]], Any]]:
    """Another engine instance (its own gateway) sharing the dialogue engine, with its call
    log on each store: its URL, what its callers will say, the app."""
    scripts: list[list[str]] = []
    log = CallLogSettings(url=store_url, recordings=tmp_path / "rec", instance="engine-b")
    app = build_app(ServerSettings(audiosocket_port=-1, ws_token=TOKEN, call_log=log),
                    _voice_services(engine, project, scripts))
    async with serving(app) as url:
        yield url, scripts, app


async def test_an_id_already_in_use_starts_a_fresh_conversation_not_verified(
        voice: Server, instance_b: tuple[str, list[list[str]], Any]) -> None:
    """Rasa's conversation is keyed by the call id. A caller who presents the id of a call
    that is verified (on another instance sharing the conversations) gets a conversation
    of their own: asked for the PIN, never told the balance."""
    url_b, scripts_b, app_b = instance_b
    wire_id = f"vip-{uuid.uuid4().hex[:8]}"
    voice.hears("我想查余额")
    verified = await voice.plain(call_id=wire_id)
    await verified.wait_prompts(2)
    await verified.say(SPEECH)
    await verified.wait_prompts(4)
    verified.ack_marks = False  # it listens on: prompts take as long as they sound
    await verified.dtmf("123456#")
    await verified.wait_prompts(6)
    assert verified.prompts[5].text == "您尾号1234的借记卡可用余额为12345.67元。"

    scripts_b.append(["我想查余额"])
    intruder = await PlainPhone().connect(url_b.replace("http", "ws") + "/ws", TOKEN,
                                          caller=KNOWN, locale="zh", call_id=wire_id)
    await intruder.wait_prompts(2)
    await intruder.say(SPEECH)
    await intruder.wait_prompts(4)
    said = [p.text for p in intruder.prompts]
    assert said[3] == PIN_PROMPT and "12345.67" not in " ".join(said), said
    await intruder.hangup()
    await verified.hangup()
    await intruder.wait_closed(30)
    await verified.wait_closed(30)
    assert intruder.end and verified.end
    assert intruder.end["call_id"] != verified.end["call_id"]
    assert wire_id not in (intruder.end["call_id"], verified.end["call_id"])

    store_b = app_b[CALL_LOG].store
    assert app_b[CALL_LOG].flush()
    row = store_b.find_call(wire_id)  # on B's log, the one call B took with it
    assert (row["call_id"], row["external_id"]) == (intruder.end["call_id"], wire_id)
    verification = [e for e in store_b.events(row["call_id"])
                    if isinstance(e, VerificationChanged)]
    assert not any(v.state == "verified" for v in verification), verification


def _start(call_id: str, caller: str, external_id: str | None = None) -> CallStarted:
    return CallStarted(call_id=call_id, transport="audiosocket", caller=caller, locale="zh",
                       external_id=external_id)


def _call(recorder: CallRecorder, call_id: str, caller: str, outcome: str,
          audio: bytes) -> None:
    """One call through the writer, as a voice session makes it: recording, start, a
    turn, the end."""
    track = recorder.open_recording(call_id)
    assert track is not None
    recorder.record(_start(call_id, caller))
    track.engine(audio)
    track.caller(audio)
    recorder.record(TurnTaken(call_id=call_id, n=1, input={"say": "理财"},
                              intent="wealth_management"))
    recorder.record(CallEnded(call_id=call_id, outcome=outcome, caller=caller))
    assert recorder.flush()


def test_a_call_id_already_in_the_log_never_alters_that_call(recorder: CallRecorder) -> None:
    """Defence in depth for item 2: whatever id a call comes with, the store never merges
    its events into another call's record. A second call under a logged call's id is
    logged whole under an id of its own; its first event names the clash."""
    store = recorder.store
    _call(recorder, "reused-id", VIP, "escalated", b"\x10\x00" * 4000)
    first = store.find_call("reused-id")
    first_events = store.events("reused-id")
    wav = recorder.recordings / first["recording"]
    first_audio = wav.read_bytes()
    time.sleep(0.01)  # (a later start time)

    _call(recorder, "reused-id", "", "hangup", b"\x20\x00" * 8000)
    assert store.find_call("reused-id") == first  # caller, outcome, end: untouched
    assert store.events("reused-id") == first_events
    assert wav.read_bytes() == first_audio  # the recording is never overwritten
    (other,) = [c for c in store.list_calls() if c["call_id"] != "reused-id"]
    events = store.events(other["call_id"])
    # Its recording event names no file (the file at that path is the first call's): kept
    # as an event of its kind, but not one a reader takes for a recording.
    assert [type(e) for e in events] == [UnknownEvent, CallStarted, TurnTaken, CallEnded]
    assert kind_of(events[0]) == "recording"
    assert events[0].extra == {"clashed_with": "reused-id"}
    assert (other["caller"], other["outcome"], other["status"]) == ("", "hangup", "complete")
    assert other["recording"] is None  # the file at its path is the first call's

    # A batch written again (its commit was lost, say) is the same call, not a clash.
    batch = [(1, _start("retried", KNOWN)), (2, CallEnded(call_id="retried", outcome="hangup"))]
    store.write(batch, "engine-a")
    store.write(batch, "engine-a")
    assert [c["call_id"] for c in store.list_calls() if c["caller"] == KNOWN] == ["retried"]
    assert len(store.events("retried")) == 2


def test_find_call_by_external_id(store: CallStore) -> None:
    store.write([(1, _start("a" * 32, KNOWN, "CA-one")), (1, _start("b" * 32, KNOWN, "dup")),
                 (1, _start("c" * 32, KNOWN, "dup"))], "engine-a")
    assert store.find_call("CA-one")["call_id"] == "a" * 32
    assert store.find_call("a" * 32)["external_id"] == "CA-one"
    with pytest.raises(AmbiguousCall, match=rf"2 calls .*\({'b' * 32}, {'c' * 32}\)"):
        store.find_call("dup")
    assert store.find_call("aaaaaaaa")["call_id"] == "a" * 32  # a prefix, for people
    for no_call in ("aaaaaaaa", "nul\x00", "\ud800", "x" * 300):  # a whole id, for machines
        with pytest.raises(CallNotFound):
            store.find_call(no_call, exact=True)


def test_an_older_call_log_gains_the_external_id_column_and_its_index(store_url: str) -> None:
    old = sa.MetaData()
    sa.Table("calls", old, sa.Column("call_id", sa.String(64), primary_key=True),
             sa.Column("started_at", sa.Float, nullable=False),
             sa.Column("status", sa.String(16), nullable=False))
    engine = sa.create_engine(store_url)
    old.create_all(engine)
    with engine.begin() as db:
        db.execute(sa.text("INSERT INTO calls VALUES ('old-call', 1.0, 'complete')"))
    engine.dispose()
    store = CallStore(store_url)
    try:
        inspector = sa.inspect(store.engine)
        assert "external_id" in {c["name"] for c in inspector.get_columns("calls")}
        assert ["external_id"] in [i["column_names"] for i in inspector.get_indexes("calls")]
        assert store.find_call("old-call")["external_id"] is None
        store.write([(1, _start("n" * 32, KNOWN, "CA-new"))], "engine-a")
        assert store.find_call("CA-new")["call_id"] == "n" * 32
    finally:
        store.close()


@pytest.fixture
async def feedback_server(engine: Any, project: Any, store_url: str,
                          tmp_path: Path) -> AsyncIterator[tuple[str, CallStore]]:
    log = CallLogSettings(url=store_url, recordings=None, instance="feedback-test")
    app = build_app(ServerSettings(audiosocket_port=-1, ws_token=TOKEN, call_log=log),
                    _voice_services(engine, project, []))
    async with serving(app) as url:
        yield url, app[CALL_LOG].store


async def test_agent_feedback_takes_a_whole_id_and_stores_nothing_for_another(
        feedback_server: tuple[str, CallStore]) -> None:
    """``POST /acd/feedback`` with an id prefix answered 200 and stored the event under the
    prefix, matching no call. A machine API takes a whole id: the engine's, or the external
    id if one call has it; unknown 404, ambiguous 409, and nothing stored."""
    url, store = feedback_server
    one, two, three = (uuid.uuid4().hex for _ in range(3))
    store.write([(1, _start(one, KNOWN, "CA-one")), (1, _start(two, KNOWN, "dup")),
                 (1, _start(three, VIP, "dup"))], "engine-a")

    def stored() -> list[Any]:
        return [[store.events(c) for c in (one, two, three)], store.list_labels()]

    nothing = stored()
    body = {"kind": "requeued", "from_queue": "general", "to_queue": "cards", "agent": "a7"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        async def post(call_id: str) -> tuple[int, dict]:
            async with http.post(f"{url}/acd/feedback", json={**body, "call_id": call_id}) as r:
                return r.status, await r.json()

        for refused, status in ((one[:8], 404), ("no-such-call", 404), ("nul\x00", 404),
                                ("dup", 409)):
            code, answer = await post(refused)
            assert code == status, (refused, answer)
            assert stored() == nothing, refused
        assert "name one by its call id" in (await post("dup"))[1]["error"]

        assert await post("CA-one") == (200, {"recorded": one})  # the external id: one call
        assert await post(two) == (200, {"recorded": two})
    for call_id in (one, two):
        start, feedback = store.events(call_id)
        assert isinstance(start, CallStarted) and isinstance(feedback, AgentFeedback)
        assert (feedback.call_id, feedback.seq, feedback.kind, feedback.from_queue,
                feedback.to_queue, feedback.agent) == (call_id, 2, "requeued", "general",
                                                       "cards", "a7")
    assert store.events(three) == nothing[0][2]
    assert sorted(label["call_id"] for label in store.list_labels()) == sorted([one, two])
