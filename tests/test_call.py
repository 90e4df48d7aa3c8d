"""A call survives a failing dialogue layer: the caller goes to an agent, never a dead line."""

from pathlib import Path

import pytest

from ivr.core.inputs import Keys, Say
from ivr.dialogue.call import FAILURE_PROMPT, Call, InputError
from ivr.dialogue.confidence import ConfidenceBands
from ivr.dialogue.engine import TurnOutcome


class BrokenDialogue:
    """A dialogue layer that greets, then fails on the next turn (a bug, a timeout...)."""

    model_path = Path("models/broken.tar.gz")
    bands = ConfidenceBands()
    kb = None

    def __init__(self) -> None:
        self.ended: list[str] = []

    async def parse(self, text: str) -> dict:
        return {"text": text, "intent": {"name": "loan_inquiry", "confidence": 0.9},
                "entities": [], "normalized": text, "dialect": "mandarin"}

    async def handle(self, call_id: str, parse: dict) -> TurnOutcome:
        if parse["intent"]["name"] == "call_start":
            return TurnOutcome(["您好"], {"topic": None}, {})
        raise RuntimeError("dialogue down")

    async def end(self, call_id: str) -> None:
        self.ended.append(call_id)


@pytest.mark.fault("NLU / dialogue failing")
async def test_a_failing_dialogue_escalates_with_the_whole_record():
    dialogue = BrokenDialogue()
    call = Call(dialogue, caller_id="+8613800000001")  # type: ignore[arg-type]
    await call.start()
    await call.take(Say("我想问问房贷"))
    result = call.result().as_dict()
    assert (result["outcome"], result["queue"], result["reason"]) == (
        "escalated", "general", "engine_error")
    assert result["turns"][-1]["prompts"] == [FAILURE_PROMPT]  # the caller hears why
    assert {"speaker": "caller", "say": "我想问问房贷"} in result["handoff"]["transcript"]
    assert dialogue.ended == [call.call_id]
    with pytest.raises(InputError, match="already ended"):
        await call.take(Say("喂？"))


async def test_keys_must_be_keys():
    call = Call(BrokenDialogue())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="DTMF must be keys"):
        await call.take(Keys("12a"))


class DeafDialogue(BrokenDialogue):
    """Greets, then its speech understanding fails."""

    async def parse(self, text: str) -> dict:
        raise TimeoutError("NLU timed out")


@pytest.mark.fault("NLU / dialogue failing")
async def test_failing_understanding_escalates_too():
    call = Call(DeafDialogue(), caller_id="+8613900000009")  # type: ignore[arg-type]
    await call.start()
    turn = await call.take(Say("我想买基金"))
    assert turn.prompts == [FAILURE_PROMPT]
    assert (call.outcome, call.handoff["reason"]) == ("escalated", "engine_error")
