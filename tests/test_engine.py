"""The dialogue engine keeps Rasa off the caller's event loop."""

import threading

from tests.conftest import KNOWN


async def test_dialogue_work_runs_on_the_dialogue_thread(call, bank):
    bank.threads.clear()
    result = await call([{"say": "我的信用卡丢了"}, {"dtmf": "123456"}, {"say": "不用了"}],
                        caller=KNOWN)
    assert result["outcome"] == "self_service"
    # The custom actions (and so the whole Rasa turn around them) ran on the dialogue
    # thread, never on the thread running this event loop.
    assert bank.threads and set(bank.threads) == {"dialogue"}
    assert threading.current_thread().name != "dialogue"


async def test_an_ended_call_is_forgotten_with_the_pin_it_was_verified_with(call, engine):
    result = await call([{"say": "我的信用卡丢了"}, {"dtmf": "123456"}, {"say": "不用了"}],
                        caller=KNOWN)
    assert result["outcome"] == "self_service"
    tracker = await engine._agent.tracker_store.retrieve(result["call_id"])
    assert tracker is None or not tracker.events  # Rasa's store no longer has the call
