"""Rasa's check of custom-action results with the schema compiled once (issue 17): every
result is still validated, a malformed one is still refused with Rasa's error, the first
time and every time; only the schema's own check against the metaschema is done once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from ivr.dialogue.action_results import (
    result_validator,
    validate_action_result,
    validate_results_with_compiled_schema,
)

GOOD = {"events": [{"event": "slot", "name": "account", "value": "123"}],
        "responses": [{"response": "utter_done"}]}
MALFORMED = [
    {"events": [{"event": "no_such_event"}]},  # an event type Rasa does not know
    {"events": "slot account=123"},  # events must be a list
    {"events": [], "responses": ["utter_done"]},  # a response must be an object
]


class _Endpoint(EndpointConfig):
    """An action server that answers every request with ``answer``."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(url="in-process://test")
        self.answer = answer

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        return self.answer


def _run(answer: dict[str, Any]) -> list[Any]:
    action = RemoteAction("action_test", _Endpoint(answer))
    tracker = DialogueStateTracker("call-1", [])
    return asyncio.run(action.run(_NoChannel(), None, tracker, Domain.empty()))


class _NoChannel:
    @staticmethod
    def name() -> str:
        return "test"


def test_a_malformed_result_is_refused_the_first_time_and_every_time() -> None:
    validate_results_with_compiled_schema()
    for result in MALFORMED:
        for _ in range(2):
            with pytest.raises(ValidationError, match="Failed to validate Action server"):
                _run(result)


def test_a_well_formed_result_becomes_its_events() -> None:
    validate_results_with_compiled_schema()
    events = _run({"events": GOOD["events"]})
    assert [(e.key, e.value) for e in events] == [("account", "123")]


def test_the_schema_is_checked_once_not_per_result(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = result_validator()
    checks: list[Any] = []
    monkeypatch.setattr(type(validator), "check_schema",
                        classmethod(lambda cls, schema: checks.append(schema)))
    for _ in range(3):
        assert validate_action_result(None, GOOD) is True
        with pytest.raises(ValidationError):
            validate_action_result(None, MALFORMED[0])
    assert checks == [] and result_validator() is validator


def test_it_accepts_and_refuses_exactly_what_rasa_does() -> None:
    """Rasa's own check (jsonschema.validate with the schema each time) agrees on every
    case: nothing about what is accepted changed."""
    import jsonschema

    spec = RemoteAction.action_response_format_spec()
    for result in [GOOD, {"events": []}, {}, *MALFORMED]:
        try:
            jsonschema.validate(result, spec)
            rasa_ok = True
        except ValidationError:
            rasa_ok = False
        try:
            ours = validate_action_result(None, result)
        except ValidationError:
            ours = False
        assert ours == rasa_ok, result
