"""Two `ivr serve` instances on loopback sharing the machine's Redis (Rasa's tracker and lock
stores) and PostgreSQL (the call log), as behind a load balancer (issue 6): each call's
conversation is in Redis whichever instance holds its socket, the instance that did not
hold a call can die without touching it, and what one instance is told about another's
call lands in the one log. Real Vosk Korean decoding, real Rasa models."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import aiohttp
import pytest
from conftest import KNOWN, free_port
from phones import PlainPhone, speak
from test_calllog_crash import Engine, logged

from ivr.calllog.store import CallStore
from ivr.core.events import AgentFeedback, TurnTaken
from ivr.dialogue.engine import REDIS_PREFIX, TRACKER_TTL_S

TOKEN = "scale-out-token"


def _tracker(call_id: str) -> str:
    return f"{REDIS_PREFIX}:tracker:{call_id}"  # the key Rasa's Redis tracker store writes


@pytest.mark.fault("one of two instances SIGKILLed")
async def test_two_instances_share_conversations_and_the_call_log(
        redis_url: str, postgres_log: str, tmp_path: Path) -> None:
    import redis

    env = {**os.environ, "IVR_CALL_LOG": postgres_log, "IVR_REDIS_URL": redis_url,
           "IVR_RECORDINGS": str(tmp_path / "recordings"), "IVR_WS_TOKEN": TOKEN}
    a = Engine({**env, "IVR_INSTANCE": "engine-a"}, free_port())
    b = Engine({**env, "IVR_INSTANCE": "engine-b"}, free_port())
    red = redis.Redis.from_url(redis_url, decode_responses=True)
    store = CallStore(postgres_log)
    try:
        await asyncio.gather(a.started(), b.started())
        on_a, on_b = uuid.uuid4().hex, uuid.uuid4().hex
        phones = {}
        for engine, call_id in ((a, on_a), (b, on_b)):
            phones[call_id] = await PlainPhone().connect(
                f"ws://127.0.0.1:{engine.port}/ws", TOKEN, caller=KNOWN, locale="ko",
                call_id=call_id)
        for phone in phones.values():
            await phone.wait_prompts(2)  # notice, greeting
            await phone.say(speak("거래 내역"))
            await phone.wait_prompts(4)  # verify first: the PIN, please
        # Each engine named its call (the phone's id is the call's external id). B's turn
        # is in the shared log (a few ms after it happened; the kill must not race that
        # commit, or the test would measure the kill's timing, not the sharing).
        await logged(store, on_a, lambda types: TurnTaken in types, a)
        await logged(store, on_b, lambda types: TurnTaken in types, b)
        named = {call_id: store.find_call(call_id)["call_id"] for call_id in (on_a, on_b)}
        # Both conversations are in the one Redis, mid-verification.
        for call_id in (on_a, on_b):
            stored = red.get(_tracker(named[call_id]))
            assert stored and "verification_form" in stored, call_id
            assert json.loads(stored)["name"] == named[call_id]  # Rasa's dialogue, by call id

        b.kill()  # SIGKILL: no cleanup at all
        await phones[on_b].wait_closed(10)
        # The call on A goes on as if nothing happened: PIN, the transactions, goodbye.
        phone = phones[on_a]
        await phone.dtmf("123456#")
        await phone.wait_prompts(6)
        await phone.hangup()
        await phone.wait_closed(20)
        assert phone.end and phone.end["outcome"] == "self_service", phone.end
        assert "123456" not in (red.get(_tracker(named[on_a])) or "")
        assert not red.exists(_tracker(named[on_a]))  # its end deleted it (and the PIN)
        assert 0 < red.ttl(_tracker(named[on_b])) <= TRACKER_TTL_S  # B's expires by itself

        # The agent desktop tells A about the call B had: it lands in the shared log.
        async with (aiohttp.ClientSession() as http,
                    http.post(f"http://127.0.0.1:{a.port}/acd/feedback",
                              json={"call_id": on_b, "kind": "wrong_queue", "agent": "a7"},
                              headers={"Authorization": f"Bearer {TOKEN}"}) as resp):
            assert resp.status == 200, await resp.text()
        call_a, call_b = store.find_call(on_a), store.find_call(on_b)
        assert (call_a["instance"], call_a["status"]) == ("engine-a", "complete")
        assert (call_b["instance"], call_b["status"]) == ("engine-b", "live")  # until B's
        types = [type(e) for e in store.events(named[on_b])]  # restart: incomplete
        assert TurnTaken in types and types[-1] is AgentFeedback, types
    finally:
        store.close()
        red.close()
        for engine in (a, b):
            if engine.process.poll() is None:
                engine.kill()


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://"])
async def test_a_malformed_conversation_store_url_is_refused(url: str, project) -> None:
    from ivr.dialogue.engine import DialogueEngine
    from ivr.errors import IvrError

    with pytest.raises(IvrError, match="redis://host:port/db"):
        from ivr.dialogue.bank import DemoBank
        from ivr.dialogue.knowledge import KnowledgeBase

        await DialogueEngine.load(project.latest_model(), DemoBank(),
                                  KnowledgeBase.load(project.knowledge), conversations=url)
