"""The call's events and their one codec (ivr/core/events.py): every kind goes to the call
log's kind word and JSON data and back unchanged, what a version does not know of a logged
event (a key, a whole kind) is kept and written back as it was, and unset fields are left
out of the data."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

from ivr.core.events import (
    KINDS,
    CallEvent,
    TurnTaken,
    UnknownEvent,
    decode,
    emitter,
    encode,
    kind_of,
    to_json,
)

# Every field of every kind set (none left to its default), so a field the codec dropped
# or renamed would show.
SAMPLES: dict[str, dict[str, Any]] = {
    "start": {"transport": "twilio", "caller": "+8613800000001", "locale": "zh",
              "model": "zh-20240101.tar.gz", "external_id": "CA123"},
    "language": {"locale": "en", "by": "keys"},
    "recording": {"recording": "2024/01/01/c1.wav"},
    "greeting": {"prompts": ["您好"], "prompt_names": ["utter_greet", None],
                 "actions": ["utter_greet"], "lock_wait_s": 0.01},
    "prompt": {"name": "utter_greet", "text": "您好", "mark": "m1", "ms": 1200,
               "interruptible": False, "render_s": 0.2},
    "barge_in": {"marks": ["m1", "m2"]},
    "partial": {"text": "查"},
    "speech": {"text": "查余额", "raw": "查 余额",
               "alternatives": [{"text": "查余额", "score": -1.5}], "audio_ms": [400, 1900],
               "muted": True, "endpoint_s": 0.3,
               "transcript_s": 0.05, "stalled": True},
    "dtmf": {"digit": "*", "at_ms": 5230},
    "timer": {"timer": "no_input"},
    "turn": {"n": 2, "input": {"say": "查余额"}, "intent": "check_balance", "confidence": 0.93,
             "intent_ranking": [{"name": "check_balance", "confidence": 0.93}],
             "normalized": "查余额", "dialect": "yue", "entities": [{"entity": "account"}],
             "asr": {"raw": "查 余额"}, "entry": "pin", "actions": ["action_balance"],
             "slots": {"verified": True}, "prompts": ["余额是..."],
             "prompt_names": ["utter_balance"], "correction_of": "credit_card",
             "band": "confirm", "confirmed": "check_balance", "lock_wait_s": 0.001,
             "queue_wait_s": 0.002, "dialogue_s": 0.03, "nlu_s": 0.02},
    "verification": {"state": "verified", "customer_id": "C001", "by": "pin",
                     "failed_attempts": 1},
    "signal": {"signal": "repeat", "turn": 3, "intent": "check_balance"},
    "route": {"queue": "cards", "reason": "no_match", "priority": "high", "topic": "card",
              "skills": ["zh"], "handoff": {"intent": "lost_card"}},
    "delivery": {"status": "failed", "attempts": 3, "error": "timeout"},
    "hangup": {"heard": "查余"},
    "error": {"error": "tts", "prompt": "utter_greet"},
    "end": {"transport": "websocket", "caller": "+8613800000001", "locale": "zh",
            "dialect": "yue", "outcome": "escalated", "intent": "lost_card",
            "served": ["check_balance"], "queue": "cards", "reason": "no_match",
            "priority": "high", "skills": ["zh"], "external_id": "CA123",
            "dropped_audio_frames": 2, "asr_audio_s": 12.5, "asr_decode_s": 1.25},
    "feedback": {"kind": "requeued", "from_queue": "cards", "to_queue": "loans",
                 "agent": "a7"},
}
LOG_FIELDS = {"call_id", "at", "seq", "extra"}


def test_the_samples_set_every_field_of_every_kind() -> None:
    assert set(SAMPLES) == set(KINDS)
    for kind, cls in KINDS.items():
        assert set(SAMPLES[kind]) == {f.name for f in fields(cls)} - LOG_FIELDS, kind


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_goes_to_the_log_and_back_unchanged(kind: str) -> None:
    event = decode(kind, SAMPLES[kind], "c1", 1700000000.5, 7)
    assert type(event) is KINDS[kind] and kind_of(event) == kind and event.extra == {}
    assert (event.call_id, event.at, event.seq) == ("c1", 1700000000.5, 7)
    assert encode(event) == (kind, SAMPLES[kind])
    # As the store writes it: JSON text, read back into an equal event.
    text = json.dumps(encode(event)[1], ensure_ascii=False)
    assert decode(kind, json.loads(text), "c1", 1700000000.5, 7) == event
    assert to_json(event) == {"seq": 7, "at": 1700000000.5, "kind": kind,
                              "data": SAMPLES[kind]}


def test_unset_fields_are_left_out_of_the_data() -> None:
    turn = TurnTaken(call_id="c1", n=1, input={"dtmf": "1"}, intent=None, confidence=0.5)
    assert encode(turn) == ("turn", {"n": 1, "input": {"dtmf": "1"}, "confidence": 0.5})
    assert to_json(decode("hangup", {}, "c1", 1.0))["data"] == {}


def test_keys_this_version_does_not_know_are_kept_and_written_back() -> None:
    logged = {"n": 1, "input": {"say": "查余额"}, "intent": "check_balance",
              "clashed_with": "c0", "newer_engine_key": {"x": [1, 2]}}
    turn = decode("turn", logged, "c1", 2.0, 1)
    assert isinstance(turn, TurnTaken) and turn.intent == "check_balance"
    assert turn.extra == {"clashed_with": "c0", "newer_engine_key": {"x": [1, 2]}}
    assert encode(turn) == ("turn", logged)


def test_a_kind_this_version_does_not_know_is_kept_as_it_was() -> None:
    logged = {"hologram": True, "n": 3}
    event = decode("hologram", logged, "c1", 3.0, 4)
    assert isinstance(event, UnknownEvent) and event.name == "hologram"
    assert kind_of(event) == "hologram" and encode(event) == ("hologram", logged)
    assert to_json(event) == {"seq": 4, "at": 3.0, "kind": "hologram", "data": logged}


def test_a_known_kind_missing_a_required_field_is_kept_as_it_was() -> None:
    """An old or damaged event (a turn without its number): readers skip it, the log keeps
    every key of it."""
    logged = {"intent": "check_balance"}
    event = decode("turn", logged, "c1", 3.0, 2)
    assert isinstance(event, UnknownEvent) and not isinstance(event, TurnTaken)
    assert encode(event) == ("turn", logged)


def test_emit_builds_the_event_for_its_call() -> None:
    got: list[CallEvent] = []
    emitter(got.append, "c9")(TurnTaken, n=1, input={"silence": True})
    assert [type(e) for e in got] == [TurnTaken] and got[0].call_id == "c9"
    assert encode(got[0]) == ("turn", {"n": 1, "input": {"silence": True}})
    emitter(None, "c9")(TurnTaken, n=1, input={})  # no sink: nowhere, no error
