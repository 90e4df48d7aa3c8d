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
