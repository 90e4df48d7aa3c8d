"""The dialogue engine keeps Rasa off the caller's event loop."""

import asyncio
import threading
import uuid

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


async def test_an_input_waits_for_its_calls_lock_and_its_outcome_says_how_long(
        engine, bank, monkeypatch):
    verify = bank.verify_pin

    async def over_the_network(customer_id: str, pin: str) -> bool:
        await asyncio.sleep(0.3)  # a real core banking system: the dialogue loop moves on
        return await verify(customer_id, pin)

    monkeypatch.setattr(bank, "verify_pin", over_the_network)
    call_id = f"lock-{uuid.uuid4().hex}"
    start = {"text": "/call_start", "intent": {"name": "call_start", "confidence": 1.0},
             "entities": [{"entity": "caller_id", "value": KNOWN},
                          {"entity": "locale", "value": "zh"}]}
    greeting = await engine.handle(call_id, start)
    assert greeting.prompts and greeting.lock_wait_s < 0.05  # nothing else held the lock
    await engine.handle(call_id, await engine.parse("我想查余额"))  # asks for the PIN
    # The PIN keyed twice at once (two instances on one Redis could see that): while the
    # first waits for the bank, holding the call's lock, the second waits for the lock.
    pin = {"text": "/dtmf", "intent": {"name": "dtmf", "confidence": 1.0},
           "entities": [{"entity": "digits", "value": "123456"}]}
    turns = await asyncio.gather(engine.handle(call_id, pin), engine.handle(call_id, pin))
    at_once, waited = sorted(t.lock_wait_s for t in turns)
    assert at_once < 0.05  # the wait only, not the turn's own work (the bank's 0.3 s)
    assert waited > 0.3  # the whole first turn (Rasa looks at a held lock once a second)
    await engine.end(call_id)


async def test_a_model_loaded_to_serve_understands_exactly_as_rasa_would_load_it(
        engine, project, model, bank, monkeypatch):
    """The engine builds a served model with one prediction, not Rasa's training step
    (ivr/dialogue/model_loading.py): every held-out utterance, intent ranking and entities
    (zh: DIET with its CRF tagger), comes out the same as from a model Rasa loaded."""
    from rasa.utils.tensorflow.models import RasaModel

    from ivr.dialogue import model_loading
    from ivr.dialogue.engine import DialogueEngine
    from ivr.dialogue.knowledge import KnowledgeBase
    from ivr.trainer.evaluation import load_heldout

    assert RasaModel.load.__func__ is model_loading._load  # what `engine` was loaded with
    monkeypatch.setattr(RasaModel, "load", classmethod(model_loading.rasa_load))
    rasa_way = await DialogueEngine.load(model, bank, KnowledgeBase.load(project.knowledge))
    try:
        def understood(parse):
            return ([(i["name"], round(i["confidence"], 6)) for i in parse["intent_ranking"]],
                    [(e["entity"], e["value"], e["start"], e["end"]) for e in parse["entities"]])

        examples = load_heldout(project.heldout)
        assert len(examples) > 300
        entities = 0
        for example in examples:
            served = understood(await engine.parse(example.text))
            assert served == understood(await rasa_way.parse(example.text)), example.text
            entities += len(served[1])
        assert entities > 50  # the CRF tagger's path was compared too
    finally:
        rasa_way.close()
