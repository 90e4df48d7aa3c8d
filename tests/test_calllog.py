"""The call log on both of its stores (SQLite and a real PostgreSQL server): events written
as they happen and in order, calls left live recovered as incomplete, filters, retention,
no secret ever stored, and replay against another model."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from conftest import KNOWN, UNKNOWN, fill

from ivr.calllog.recorder import CallRecorder, recover
from ivr.calllog.replay import Replayer
from ivr.calllog.store import CallFilter, CallLogError, CallStore
from ivr.cli import main
from ivr.core.events import CallEnded, CallStarted, RecordingStarted, TurnTaken, to_json
from ivr.dialogue.simulate import parse_script, run_script
from ivr.voice.metrics import Metrics
from ivr.voice.voice_locale import load_voice_locales


def _call(recorder: CallRecorder, call_id: str, outcome: str | None, **end: Any) -> None:
    recorder.record(CallStarted(call_id=call_id, transport="twilio", caller=KNOWN,
                                locale="zh", model="zh-x.tar.gz"))
    recorder.record(TurnTaken(call_id=call_id, n=1, input={"say": "查余额"}))
    if outcome:
        recorder.record(CallEnded(call_id=call_id, outcome=outcome, **end))


WHOLE_CALL = [CallStarted, TurnTaken, CallEnded]  # what _call records of an ended call


def test_events_are_committed_in_order_with_the_call_summary(
        store: CallStore, recorder: CallRecorder) -> None:
    _call(recorder, "c1", "escalated", queue="cards", reason="intent", intent="password_reset",
          skills=["yue"])
    assert recorder.flush()
    events = store.events("c1")
    assert [type(e) for e in events] == WHOLE_CALL
    assert [e.seq for e in events] == [1, 2, 3]
    assert isinstance(events[1], TurnTaken)
    assert events[1].input["say"] == "查余额"  # Chinese stored as is
    call = store.find_call("c1")
    assert call["status"] == "complete" and call["transport"] == "twilio"
    assert (call["outcome"], call["queue"], call["intent"]) == ("escalated", "cards",
                                                                "password_reset")
    assert call["ended_at"] >= call["started_at"] and call["instance"] == "engine-a"


async def test_settled_means_committed_and_gives_up_on_a_store_that_hangs_or_fails(
        store: CallStore, recorder: CallRecorder) -> None:
    _call(recorder, "c1", "hangup")
    assert await recorder.settled()
    assert [type(e) for e in store.events("c1")] == WHOLE_CALL  # no flush

    class Stuck:  # hangs until released, then fails until it is back up
        def __init__(self) -> None:
            self.released, self.up = threading.Event(), threading.Event()

        def write(self, batch: Any, instance: str) -> None:
            self.released.wait()
            if not self.up.is_set():
                raise sa.exc.OperationalError("insert", {}, Exception("database is down"))
            store.write(batch, instance)

    stuck = Stuck()
    other = CallRecorder(stuck, "engine-b")  # type: ignore[arg-type]
    _call(other, "c2", "hangup")
    assert not await other.settled(timeout_s=0.2)  # hangs: the call ends anyway
    stuck.released.set()
    while other.failing_since is None:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    assert not await other.settled(timeout_s=5)  # failing: nothing to wait for
    assert time.monotonic() - started < 1
    stuck.up.set()
    assert other.flush(timeout_s=10)
    _call(other, "c3", "hangup")
    assert await other.settled(timeout_s=10)  # the barrier given up on broke nothing
    assert [type(e) for e in store.events("c3")] == WHOLE_CALL
    other.close()


def test_calls_a_dead_instance_left_live_are_marked_incomplete(
        store: CallStore, recorder: CallRecorder) -> None:
    _call(recorder, "cut-off", None)
    other = CallRecorder(store, "engine-b")
    _call(other, "elsewhere", None)
    assert recorder.flush() and other.flush()
    assert recover(store, "engine-a", None) == ["cut-off"]
    assert store.find_call("cut-off")["status"] == "incomplete"
    assert store.find_call("elsewhere")["status"] == "live"  # another instance's live call
    assert [type(e) for e in store.events("cut-off")] == [CallStarted, TurnTaken]
    other.close()


def test_listing_filters_and_finding_by_prefix(store: CallStore,
                                               recorder: CallRecorder) -> None:
    _call(recorder, "aaaa0001", "self_service", intent="check_balance")
    _call(recorder, "aaaa0002", "escalated", queue="fraud", intent="fraud_report")
    _call(recorder, "bbbb0003", "escalated", queue="cards", intent="password_reset")
    assert recorder.flush()
    ids = lambda **kw: {c["call_id"] for c in store.list_calls(CallFilter(**kw))}  # noqa: E731
    assert ids() == {"aaaa0001", "aaaa0002", "bbbb0003"}
    assert ids(outcome="escalated") == {"aaaa0002", "bbbb0003"}
    assert ids(queue="fraud") == {"aaaa0002"}
    assert ids(intent="check_balance") == {"aaaa0001"}
    assert ids(caller=KNOWN, limit=1) <= {"aaaa0001", "aaaa0002", "bbbb0003"}
    assert ids(since=time.time() + 60) == set()
    assert store.find_call("bbbb00")["call_id"] == "bbbb0003"
    with pytest.raises(CallLogError, match="ambiguous"):
        store.find_call("aaaa00")
    with pytest.raises(CallLogError, match="no call"):
        store.find_call("zzzzzz")


@pytest.mark.fault("call-log store failing")
def test_the_writer_keeps_events_while_the_store_fails(store: CallStore,
                                                        tmp_path: Path) -> None:
    class Flaky:  # the real store, down for its first two writes
        def __init__(self) -> None:
            self.failures = 2

        def write(self, batch: Any, instance: str) -> None:
            if self.failures:
                self.failures -= 1
                raise sa.exc.OperationalError("insert", {}, Exception("database is down"))
            store.write(batch, instance)

    recorder = CallRecorder(Flaky(), "engine-a")  # type: ignore[arg-type]
    _call(recorder, "c1", "hangup")
    assert recorder.flush(timeout_s=5)
    assert [type(e) for e in store.events("c1")] == WHOLE_CALL
    assert recorder.healthy
    recorder.close()


def test_the_writers_state_is_on_the_metrics_as_it_changes() -> None:
    class Down:  # a store that fails until it is back up
        def __init__(self) -> None:
            self.up = threading.Event()

        def write(self, batch: Any, instance: str) -> None:
            if not self.up.is_set():
                raise sa.exc.OperationalError("insert", {}, Exception("database is down"))

    store = Down()
    recorder = CallRecorder(store, "engine-a", max_pending=1)  # type: ignore[arg-type]
    metrics = Metrics()
    metrics.watch_call_log(recorder)

    def scraped() -> tuple[float | None, ...]:
        return tuple(metrics.registry.get_sample_value(f"ivr_call_log_{name}") for name in
                     ("failing", "pending_items", "dropped_items_total"))

    assert scraped() == (0, 0, 0)
    assert metrics.registry.get_sample_value("ivr_recordings_cut_total") == 0
    recorder.record(CallStarted(call_id="c1"))
    deadline = time.monotonic() + 5
    while recorder.failing_since is None and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.record(TurnTaken(call_id="c1", n=1, input={}))  # waits behind the failing write
    recorder.record(CallEnded(call_id="c1"))  # the queue (1 item) is full: dropped
    assert scraped() == (1, 2, 1)
    store.up.set()
    assert recorder.flush(timeout_s=5)
    assert scraped() == (0, 0, 1)
    recorder.close()



@pytest.mark.fault("disk full under the recordings")
def test_a_recording_the_disk_refuses_stops_there_readable(small_disk: Path,
                                                           tmp_path: Path) -> None:
    """The recordings' disk fills mid-call (the log's store is elsewhere): the recording
    ends at the last whole frame written, from the call's start; the rest of that call is
    not recorded even once there is space again (it would not line up); the next call's
    recording is whole."""
    store = CallStore(f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    recorder = CallRecorder(store, "engine-a", small_disk / "rec")
    second = np.arange(8000, dtype=np.int16).tobytes()  # 1 s of a ramp, the caller's side
    try:
        track = recorder.open_recording("c1")
        _call(recorder, "c1", None)
        track.caller(second)
        assert recorder.flush()
        filler = fill(small_disk)
        track.caller(second)  # refused
        assert recorder.flush() and recorder.recordings_cut == 1
        filler.unlink()
        track.caller(second)  # space again, but this call's recording has stopped
        recorder.record(CallEnded(call_id="c1", outcome="hangup"))
        other = recorder.open_recording("c2")
        _call(recorder, "c2", None)
        other.caller(second)
        recorder.record(CallEnded(call_id="c2", outcome="hangup"))
        assert recorder.flush() and recorder.recordings_cut == 1
        assert [type(e) for e in store.events("c1")] == [RecordingStarted, *WHOLE_CALL]
        paths = [small_disk / "rec" / store.find_call(c)["recording"] for c in ("c1", "c2")]
    finally:
        recorder.close()
        store.close()
    with wave.open(str(paths[0])) as cut:
        frames = cut.readframes(cut.getnframes())
    assert 8000 <= len(frames) // 4 < 16000  # what fitted in the file's last page, if any
    caller_side = np.frombuffer(frames, dtype=np.int16)[0::2]
    assert caller_side[:8000].tobytes() == second
    assert not caller_side[8000:].any() or (caller_side[8000:] == np.arange(
        len(caller_side) - 8000, dtype=np.int16)).all()  # the refused second's start, intact
    with wave.open(str(paths[1])) as whole:
        assert np.frombuffer(whole.readframes(whole.getnframes()), np.int16)[0::2].tobytes() \
            == second

def test_purge_removes_calls_past_retention_and_their_recordings(
        store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IVR_CALL_LOG", store_url)
    monkeypatch.setenv("IVR_RECORDINGS", str(tmp_path / "rec"))
    store = CallStore(store_url)
    recorder = CallRecorder(store, "engine-a", tmp_path / "rec")
    track = recorder.open_recording("old")
    assert track is not None
    track.caller(b"\1\0" * 160)
    _call(recorder, "old", "hangup")
    _call(recorder, "live", None)
    recorder.close()
    wav = tmp_path / "rec" / store.find_call("old")["recording"]
    assert wav.is_file()
    assert main(["calls", "purge", "--older-than", "0", "--yes"]) == 0
    assert "purged 1 call(s)" in capsys.readouterr().out
    assert not wav.exists() and store.events("old") == []
    assert store.find_call("live")["status"] == "live"  # never purged while in progress
    store.close()


# --- no secret is ever stored ------------------------------------------------------------
SECRETS = ("123456", "888888", "6258880000005678", "6222020000001234", "110101199003074518",
           "一二三四五六", "幺二三四五六")


async def test_no_pin_card_or_id_number_in_the_store_after_calls_that_say_and_key_them(
        engine: Any, ko_engine: Any, store: CallStore, recorder: CallRecorder,
        store_url: str) -> None:
    scripts = [
        {"caller": KNOWN, "turns": [{"say": "查余额"}, {"dtmf": "123456#"},
                                    {"say": "我的身份证号是110101199003074518"}]},
        {"caller": UNKNOWN, "turns": [{"say": "信用卡账单"}, {"dtmf": "6258880000005678#"},
                                      {"dtmf": "123456#"}]},
        {"caller": KNOWN, "turns": [{"say": "我的卡号是6222020000001234密码一二三四五六"},
                                    {"say": "挂失"}, {"say": "密码是幺二三四五六"}]},
        {"caller": KNOWN, "locale": "ko", "turns": [{"say": "잔액 조회"}, {"dtmf": "123456#"}]},
    ]
    for data in scripts:
        script = parse_script(data, Path("<test>"))
        await run_script(script, ko_engine if script.locale == "ko" else engine, None,
                         recorder.record)
    assert recorder.flush()
    calls = store.list_calls()
    assert len(calls) == 4 and all(c["status"] == "complete" for c in calls)
    stored = json.dumps(calls, ensure_ascii=False) + "".join(
        json.dumps(to_json(e), ensure_ascii=False)
        for c in calls for e in store.events(c["call_id"]))
    assert "verification" in stored and "5678" in stored  # the log is there, masked
    for secret in SECRETS:
        assert secret not in stored, secret


# --- replay ------------------------------------------------------------------------------
async def test_replay_reproduces_routes_and_names_the_calls_another_model_changes(
        ko_engine: Any, project: Any, store: CallStore, recorder: CallRecorder,
        altered_ko_model: Path) -> None:
    complaint = parse_script({"caller": KNOWN, "locale": "ko", "turns": [{"say": "민원 접수"}]},
                             Path("<test>"))
    rates = parse_script({"caller": KNOWN, "locale": "ko",
                          "turns": [{"say": "환율 알려 주세요"}, {"say": "아니요"}]},
                         Path("<test>"))
    balance = parse_script({"caller": UNKNOWN, "locale": "ko", "turns": [
        {"say": "잔액 조회"}, {"dtmf": "6222020000001234#"}, {"dtmf": "111111#"},
        {"dtmf": "123456#"}, {"say": "아니요"}]}, Path("<test>"))
    results = [await run_script(s, ko_engine, None, recorder.record)
               for s in (complaint, rates, balance)]
    assert [r.outcome for r in results] == ["escalated", "self_service", "self_service"]
    assert recorder.flush()
    store.add_label(results[0].call_id, by="trainer-kim", queue="complaints")

    replayer = Replayer(store, project.root, load_voice_locales(project.root / "locales"))
    try:
        # The same model: every turn and route as recorded; the wrong then right PIN is
        # answered as the bank answered it, though no PIN was stored.
        same = await replayer.replay(results[2].call_id)
        assert same["source"] == "transcript" and not same["route_changed"]
        assert not any(t["differs"] for t in same["turns"])
        assert [t["replayed"]["prompt_names"][0] for t in same["turns"][1:3]] == [
            "utter_ask_verified", "utter_wrong_pin"]
        report = await replayer.regression(time.time() - 3600, None, "ko", None)
        assert (report["calls"], report["changed"]) == (3, 0)

        report = await replayer.regression(time.time() - 3600, None, "ko", altered_ko_model)
    finally:
        replayer.close()
    assert report["model"] == altered_ko_model.name
    assert report["calls"] == 3 and report["changed"] == 1
    change = report["changes"][0]
    assert change["call_id"] == results[0].call_id
    assert (change["from"], change["to"]) == ("escalated:complaints", "escalated:fraud")
    assert change["direction"] == "worse" and report["worse"] == 1  # the trainer said so
