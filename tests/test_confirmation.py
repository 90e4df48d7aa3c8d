"""Accept, confirm or reject (ivr/dialogue/confidence.py) as a call lives it, on a scripted
dialogue whose understanding is given: the call's own logic, no model, no clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.core.inputs import Keys, Say
from ivr.dialogue.call import CONFIRM_PROMPT, Call
from ivr.dialogue.confidence import ConfidenceBands
from ivr.dialogue.engine import TurnOutcome
from ivr.dialogue.knowledge import KnowledgeBase

ROOT = Path(__file__).resolve().parent.parent


class ScriptedDialogue:
    """Understands each utterance as told (``heard``: text -> (intent, confidence)) and
    records what the dialogue was asked to act on."""

    model_path = Path("models/scripted.tar.gz")

    def __init__(self, heard: dict[str, tuple[str, float]],
                 ranking: dict[str, list[tuple[str, float]]] | None = None) -> None:
        self.heard = heard
        self.ranking = ranking or {}
        self.bands = ConfidenceBands.for_locale(ROOT / "locales" / "zh.yml")
        self.kb = KnowledgeBase.load(ROOT / "knowledge" / "zh.yml")
        self.acted_on: list[str] = []

    async def parse(self, text: str) -> dict[str, Any]:
        intent, confidence = self.heard[text]
        ranking = [{"name": n, "confidence": c}
                   for n, c in self.ranking.get(text, [(intent, confidence)])]
        return {"text": text, "intent": {"name": intent, "confidence": confidence},
                "intent_ranking": ranking, "entities": [], "normalized": text}

    async def handle(self, call_id: str, parse: dict[str, Any]) -> TurnOutcome:
        intent = parse["intent"]["name"]
        if intent != "call_start":
            self.acted_on.append(intent)
        return TurnOutcome([f"<{intent}>"], {}, {}, [f"utter_{intent}"])

    async def end(self, call_id: str) -> None:
        pass


HEARD = {
    "我想看看信用卡那个": ("credit_card_bill", 0.62),    # unsure: confirm
    "查余额": ("check_balance", 0.99),                 # sure: act
    "是的": ("affirm", 0.99),
    "不是": ("deny", 0.98),
    "嗯": ("nlu_fallback", 0.0),                       # a hesitation: nothing said
    "好像是吧": ("affirm", 0.52),                       # not an explicit yes
    "我的卡丢了": ("report_lost_card", 0.90),           # costly: confirmed below 0.95
    "我要挂失我的卡": ("report_lost_card", 0.99),
    "转人工": ("human_agent", 0.97),
    "我想查账单": ("credit_card_bill", 0.55),
}


async def call_with(*said: str, **kw: Any) -> tuple[Call, ScriptedDialogue]:
    dialogue = ScriptedDialogue(HEARD, **kw)
    call = Call(dialogue)  # type: ignore[arg-type]
    await call.start()
    for text in said:
        await call.take(Say(text))
    return call, dialogue


async def test_a_sure_understanding_is_acted_on_at_once() -> None:
    call, dialogue = await call_with("查余额")
    assert dialogue.acted_on == ["check_balance"]
    assert call.turns[0].band == "accept"


async def test_an_unsure_one_is_confirmed_and_acted_on_after_yes() -> None:
    call, dialogue = await call_with("我想看看信用卡那个")
    assert dialogue.acted_on == []  # nothing done yet
    assert call.turns[0].prompts == ["您是要查询信用卡账单，对吗？"]
    assert call.prompt_names == [CONFIRM_PROMPT] and call.turns[0].band == "confirm"
    await call.take(Say("是的"))
    assert dialogue.acted_on == ["credit_card_bill"]
    assert call.turns[1].confirmed == "credit_card_bill"


async def test_no_to_a_confirmation_is_a_no_match() -> None:
    _, dialogue = await call_with("我想看看信用卡那个", "不是")
    assert dialogue.acted_on == ["nlu_fallback"]  # asked again, and a strike (rule 1)


@pytest.mark.parametrize("unclear", ["嗯", "好像是吧"])
async def test_only_an_explicit_yes_answers_a_confirmation(unclear: str) -> None:
    call, dialogue = await call_with("我想看看信用卡那个", unclear)
    assert dialogue.acted_on == []  # asked once more, not taken as yes
    assert call.turns[1].prompts == ["请您说“是”或者“不是”。您是要查询信用卡账单吗？"]
    await call.take(Say(unclear))
    assert dialogue.acted_on == ["nlu_fallback"]  # then it counts as not understood


async def test_a_clear_new_request_replaces_the_question() -> None:
    _, dialogue = await call_with("我想看看信用卡那个", "查余额")
    assert dialogue.acted_on == ["check_balance"]
    _, dialogue = await call_with("我想看看信用卡那个", "转人工")  # rule 2, in any state
    assert dialogue.acted_on == ["human_agent"]


async def test_keys_settle_a_pending_confirmation() -> None:
    call, dialogue = await call_with("我想看看信用卡那个")
    await call.take(Keys("0"))
    assert dialogue.acted_on == ["human_agent"]
    await call.take(Say("是的"))  # no longer a confirmation's answer: a plain yes
    assert dialogue.acted_on == ["human_agent", "affirm"]


async def test_costly_actions_are_confirmed_below_a_higher_band() -> None:
    call, dialogue = await call_with("我的卡丢了")
    assert dialogue.acted_on == [] and call.turns[0].prompts == ["您是要挂失银行卡，对吗？"]
    _, dialogue = await call_with("我要挂失我的卡")
    assert dialogue.acted_on == ["report_lost_card"]


async def test_two_close_topics_are_asked_a_or_b_by_the_dialogue_not_confirmed() -> None:
    ranking = {"我想查账单": [("credit_card_bill", 0.55), ("recent_transactions", 0.40)]}
    _, dialogue = await call_with("我想查账单", ranking=ranking)
    assert dialogue.acted_on == ["credit_card_bill"]  # the dialogue asks "A 还是 B？"


async def test_an_unclear_yes_outside_a_confirmation_is_not_a_yes() -> None:
    call, dialogue = await call_with("好像是吧")
    assert dialogue.acted_on == ["nlu_fallback"]
    assert (call.turns[0].intent, call.turns[0].band) == ("affirm", "reject")


async def test_a_transcript_heard_unsurely_is_confirmed() -> None:
    dialogue = ScriptedDialogue(HEARD)
    call = Call(dialogue)  # type: ignore[arg-type]
    await call.start()
    nbest = {"alternatives": [{"text": "查余额", "score": 200.0},
                              {"text": "查利率", "score": 199.9},
                              {"text": "插鱼鹅", "score": 199.5}]}
    await call.take(Say("查余额", asr=nbest))
    assert dialogue.acted_on == [] and call.turns[0].band == "confirm"
