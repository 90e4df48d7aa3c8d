"""Held-out NLU accuracy: the issue's bar, measured on data never trained on."""

from ivr.evaluation import evaluate, load_heldout, save_confusion_matrix


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


def test_heldout_never_overlaps_training_data(project):
    from rasa.shared.nlu.training_data.loading import load_data

    trained = set()
    for path in project.nlu_files():
        trained |= {m.get("text") for m in load_data(str(path)).intent_examples}
    overlap = [e.text for e in load_heldout(project.heldout) if e.text in trained]
    assert not overlap
