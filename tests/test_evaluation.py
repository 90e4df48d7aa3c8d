"""Held-out NLU accuracy: the issue's bar, measured on data never trained on."""

import pytest

from ivr.evaluation import evaluate, load_heldout, save_confusion_matrix
from ivr.project import Project


async def test_heldout_accuracy_meets_the_bar(engine, project, tmp_path):
    examples = load_heldout(project.heldout)
    intents = {e.intent for e in examples}
    assert all(sum(e.intent == i for e in examples) >= 15 for i in intents)
    dialect_share = sum(e.form != "mandarin" for e in examples) / len(examples)
    assert dialect_share >= 1 / 3 - 0.01

    report = await evaluate(engine, examples)
    assert report["accuracy"] >= 0.92, report["errors"]
    assert report["dialect_and_asr_accuracy"] >= 0.85, report["errors"]
    assert set(report["per_form"]) == {"mandarin", "yue", "sc", "db", "wu", "minnan", "asr"}

    image = save_confusion_matrix(report["pairs"], tmp_path / "cm.png")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_korean_heldout_accuracy(ko_engine, ko_project):
    examples = load_heldout(ko_project.heldout)
    intents = {e.intent for e in examples}
    assert len(intents) == 21 and all(4 <= sum(e.intent == i for e in examples) <= 6
                                       for i in intents)
    report = await evaluate(ko_engine, examples)
    assert report["accuracy"] >= 0.9, report["errors"]
    assert set(report["per_form"]) == {"standard", "casual", "spacing"}
    assert report["dialect_and_asr_examples"] == sum(e.form != "standard" for e in examples)


@pytest.mark.parametrize("locale", ["zh", "ko"])
def test_heldout_never_overlaps_training_data(project, locale):
    from rasa.shared.nlu.training_data.loading import load_data

    project = Project(project.root, locale)
    trained = set()
    for path in project.nlu_files():
        trained |= {m.get("text") for m in load_data(str(path)).intent_examples}
    overlap = [e.text for e in load_heldout(project.heldout) if e.text in trained]
    assert not overlap
