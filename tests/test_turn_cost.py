"""Per-turn waste taken off the serial dialogue thread (issue 17): a turn's outcome comes
from the tracker Rasa has just saved, not from reading the whole conversation back, and
is the same as what the store holds. Real Korean model."""

from __future__ import annotations

import uuid
from typing import Any

from ivr.dialogue.engine import NO_MATCH_INTENT


def _event(intent: str, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"text": f"/{intent}", "intent": {"name": intent, "confidence": 1.0},
            "intent_ranking": [{"name": intent, "confidence": 1.0}],
            "entities": entities or []}


async def test_a_turn_does_not_read_its_tracker_back_and_matches_the_store(
        ko_engine: Any, monkeypatch: Any) -> None:
    agent = ko_engine._agent
    store = agent.tracker_store
    handled = {"done": False}
    read_back: list[str] = []
    handle_message, retrieve = agent.handle_message, store.retrieve

    async def spy_handle(message: Any) -> Any:
        handled["done"] = False
        result = await handle_message(message)
        handled["done"] = True
        return result

    async def spy_retrieve(sender_id: str) -> Any:
        if handled["done"]:
            read_back.append(sender_id)
        return await retrieve(sender_id)

    monkeypatch.setattr(agent, "handle_message", spy_handle)
    monkeypatch.setattr(store, "retrieve", spy_retrieve)
    call_id = f"turn-cost-{uuid.uuid4().hex}"
    try:
        start = await ko_engine.handle(
            call_id, _event("call_start", [{"entity": "locale", "value": "ko"}]))
        outcome = await ko_engine.handle(call_id, _event(NO_MATCH_INTENT))
        assert read_back == []  # nothing read after Rasa handled the message
        stored = await retrieve(call_id)
        slots = stored.current_slot_values()
        slots["active_loop"] = stored.active_loop_name
        assert outcome.slots == slots and start.slots["locale"] == "ko"
        assert outcome.prompts  # the no-match is answered (a re-prompt)
    finally:
        await ko_engine.end(call_id)
