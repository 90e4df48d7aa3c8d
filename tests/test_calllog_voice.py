"""Real Korean voice calls in the call log: a two-channel recording with the PIN entry
silenced, every event logged, and `ivr replay` decoding the recording again through the
real Vosk model: the same route with the live model, the changed calls named with a
deliberately different one."""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import KNOWN
from phones import PlainPhone, TwilioPhone, serving, speak, tone

from ivr.calllog.recorder import CallLogSettings, CallRecorder
from ivr.calllog.replay import Replayer
from ivr.cli import main
from ivr.core.events import (
    AgentFeedback,
    CallEnded,
    CallStarted,
    KeyPressed,
    PromptPlayed,
    TranscriptFinal,
    TranscriptPartial,
    TurnTaken,
    VerificationChanged,
    to_json,
)
from ivr.server.app import build_app
from ivr.server.settings import ServerSettings
from ivr.server.state import CALL_LOG, GATEWAY
from ivr.voice.asr import ScriptedRecognizer, SpeechModel, VoskRecognizer
from ivr.voice.session import VoiceServices, VoiceSettings
from ivr.voice.tts import EspeakTts, PromptAudio
from ivr.voice.voice_locale import load_voice_locales

pytestmark = pytest.mark.usefixtures("no_blocking_on_the_loop")

TOKEN = "calllog-test-token"


class Server:
    def __init__(self, app: Any, url: str) -> None:
        self.url = url
        self.ws_url = url.replace("http", "ws")
        self.gateway = app[GATEWAY]
        self.recorder: CallRecorder = app[CALL_LOG]

    async def logged(self, call_id: str, timeout: float = 30) -> dict[str, Any]:
        """The call's row once the call has ended and everything is written (``call_id``:
        its id, or the telephony's id for it, its ``external_id``)."""
        for _ in range(int(timeout / 0.05)):
            if any(call_id in (r.call_id, r.external_id) for r in self.gateway.results):
                assert await asyncio.to_thread(self.recorder.flush)
                return await asyncio.to_thread(self.recorder.store.find_call, call_id)
            await asyncio.sleep(0.05)
        raise AssertionError(f"call {call_id} did not end")


@pytest.fixture(scope="module")
def korean_model(project: Any) -> SpeechModel:
    locales = load_voice_locales(project.root / "locales")
    return SpeechModel.load("ko", locales["ko"].asr_model or "", end_of_speech_ms=500)


@pytest.fixture(scope="module")
async def server(engine: Any, ko_engine: Any, project: Any, korean_model: SpeechModel,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    folder = tmp_path_factory.mktemp("voice-log")
    locales = load_voice_locales(project.root / "locales")
    services = VoiceServices(
        engines={"zh": engine, "ko": ko_engine}, locales=locales,
        prompts=PromptAudio(EspeakTts(), cache_dir=project.root / ".cache" / "prompts"),
        recognizer_for=lambda loc: VoskRecognizer(korean_model) if loc == "ko"
        else ScriptedRecognizer([]),
        default_locale="zh", settings=VoiceSettings(no_input_ms=4000, playback_grace_s=0.5))
    log = CallLogSettings(url=f"sqlite:///{folder / 'calls.sqlite3'}",
                          recordings=folder / "recordings", instance="voice-test")
    app = build_app(ServerSettings(audiosocket_port=-1, ws_token=TOKEN, call_log=log),
                    services)
    async with serving(app) as url:
        yield Server(app, url)


@pytest.fixture(scope="module")
async def calls(server: Server) -> dict[str, str]:
    """Two real Korean calls: transactions after a PIN (Twilio), a complaint (plain socket);
    their ids, as the engine named them (each telephony's id is the call's external_id)."""
    phone = await TwilioPhone().connect(f"{server.ws_url}/twilio", caller=KNOWN, locale="ko")
    await phone.wait_prompts(2)  # notice, greeting
    await phone.say(speak("거래 내역"))
    await phone.wait_prompts(4)  # verify first, then the PIN
    await phone.say(tone(600, hz=941))  # in-band key tones, as a phone leaks them
    await phone.dtmf("123456#")
    await phone.wait_prompts(7)
    await phone.say(speak("아니요"))
    await phone.wait_closed(30)

    call_id = uuid.uuid4().hex
    plain = await PlainPhone().connect(f"{server.ws_url}/ws", TOKEN, caller=KNOWN,
                                       locale="ko", call_id=call_id)
    await plain.wait_prompts(2)
    await plain.say(speak("민원"))
    await plain.wait_closed(30)
    transactions = await server.logged(phone.call_sid)
    complaint = await server.logged(call_id)
    assert (transactions["external_id"], complaint["external_id"]) == (phone.call_sid, call_id)
    assert complaint["call_id"] == plain.end["call_id"] != call_id  # named by the engine
    return {"transactions": transactions["call_id"], "complaint": complaint["call_id"]}


async def test_a_voice_call_is_logged_with_its_asr_and_a_two_channel_recording(
        server: Server, calls: dict[str, str]) -> None:
    call = await server.logged(calls["transactions"])
    assert (call["status"], call["transport"], call["locale"]) == ("complete", "twilio", "ko")
    assert (call["outcome"], call["intent"]) == ("self_service", "recent_transactions")
    events = await asyncio.to_thread(server.recorder.store.events, call["call_id"])
    types = {type(e) for e in events}
    for kind in (CallStarted, PromptPlayed, TranscriptPartial, TranscriptFinal, TurnTaken,
                 KeyPressed, VerificationChanged, CallEnded):
        assert kind in types, kind
    speech = [e for e in events if isinstance(e, TranscriptFinal)]
    assert speech[0].text == "거래 내역" and speech[0].alternatives
    first, last = speech[0].audio_ms, speech[-1].audio_ms  # what each final decoded
    assert first and last
    turns = [e for e in events if isinstance(e, TurnTaken)]
    assert turns[0].intent == "recent_transactions" and turns[0].intent_ranking
    assert turns[0].asr and turns[0].asr["audio_ms"] == first
    keys = [e for e in events if isinstance(e, KeyPressed)]
    assert [k.digit for k in keys] == ["*"] * 6 + ["#"]

    with wave.open(str(server.recorder.recordings / call["recording"])) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    caller, engine = samples[0::2], samples[1::2]
    at = lambda ms: ms * 8  # noqa: E731  (samples at 8 kHz)
    assert np.abs(caller[at(first[0]):at(first[1])]).max() > 1000  # 거래 내역, as said
    # The key tones (600 ms, then 1200 ms of silence, then the keys) sent while the PIN
    # was asked for are silence in the recording.
    keys_at = keys[0].at_ms
    assert keys_at is not None
    assert first[1] < keys_at - 1800 < last[1]
    assert np.abs(caller[at(keys_at - 1800):at(keys_at)]).max() == 0
    assert np.abs(engine).max() > 1000  # the prompts, on their own channel


async def test_replay_decodes_the_recording_again_and_reproduces_the_route(
        server: Server, calls: dict[str, str], project: Any, korean_model: SpeechModel,
        altered_ko_model: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for call_id in calls.values():
        await server.logged(call_id)
    store = server.recorder.store
    locales = await asyncio.to_thread(load_voice_locales, project.root / "locales")
    replayer = Replayer(store, project.root, locales, server.recorder.recordings,
                        lambda loc: VoskRecognizer(korean_model))
    try:
        same = await replayer.replay(calls["transactions"])
        assert same["source"] == "audio" and not same["route_changed"]
        assert [t["replayed"]["heard"] for t in same["turns"] if t["input"] == "say"] == [
            "거래 내역", "아니요"]  # heard again from the recording
        assert not any(t["differs"] for t in same["turns"])

        since = time.time() - 3600
        report = await replayer.regression(since, None, "ko", altered_ko_model)
    finally:
        replayer.close()
    assert report["calls"] == 2 and report["changed"] == 1
    change = report["changes"][0]
    assert change["call_id"] == calls["complaint"]
    assert (change["from"], change["to"]) == ("escalated:complaints", "escalated:fraud")

    # The same through the command line, reading the server's log.
    monkeypatch.setenv("IVR_CALL_LOG", str(store.url))
    monkeypatch.setenv("IVR_RECORDINGS", str(server.recorder.recordings))
    args = ["replay", calls["complaint"][:8], "--model", str(altered_ko_model)]
    assert await asyncio.to_thread(main, args) == 0  # the command runs its own event loop
    out = capsys.readouterr().out
    assert "from its audio" in out and "escalated:complaints → escalated:fraud" in out
    assert "CHANGED" in out


async def test_the_agent_desktop_reports_a_wrong_queue(server: Server,
                                                       calls: dict[str, str]) -> None:
    import aiohttp

    call_id = calls["complaint"]
    await server.logged(call_id)
    store = server.recorder.store
    last = (await asyncio.to_thread(store.events, call_id))[-1]
    feedback = {"call_id": call_id, "kind": "requeued", "from_queue": "complaints",
                "to_queue": "general", "agent": "agent-0042"}
    url = f"{server.url}/acd/feedback"
    async with aiohttp.ClientSession() as http:
        refused = await http.post(url, json=feedback, headers={"Authorization": "Bearer x"})
        assert refused.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        bad = await http.post(url, json={**feedback, "kind": "great"}, headers=auth)
        assert bad.status == 400 and "requeued" in (await bad.json())["error"]
        missing = await http.post(url, json={**feedback, "call_id": "no-such-call"},
                                  headers=auth)
        assert missing.status == 404
        ok = await http.post(url, json=feedback, headers=auth)
        assert ok.status == 200, await ok.text()
    added = (await asyncio.to_thread(store.events, call_id))[-1]
    assert isinstance(added, AgentFeedback) and last.seq is not None
    assert added.seq == last.seq + 1
    assert to_json(added)["data"] == {"kind": "requeued", "from_queue": "complaints",
                                      "to_queue": "general", "agent": "agent-0042"}
    label = (await asyncio.to_thread(store.labels_for, [call_id]))[call_id]
    assert (label["queue"], label["by"]) == ("general", "agent-0042")
