"""Training: a trainer's data edit changes the engine's behaviour with no code change."""

import shutil
import subprocess
import sys

import pytest

from ivr.dialogue.bank import DemoBank
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.knowledge import KnowledgeBase
from ivr.project import Project
from ivr.trainer.promotion import write_live_pointer
from ivr.trainer.training import check_inputs
from tests.conftest import copy_project

UTTERANCE = "仲剩几多水"  # Cantonese slang: "how much money is left?"
SYNONYMS = "    几多水: 多少钱\n    仲剩: 还剩\n"


def ivr_train(project: Project, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "ivr.cli", "--project", str(project.root),
                           "train", *args], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_train_is_skipped_when_nothing_changed(project, model, ko_project, ko_model):
    # Without --locale, `ivr train` (scripts/setup.sh) covers every locale.
    out = ivr_train(project).splitlines()
    assert out == [f"model up to date (inputs unchanged): {m}" for m in (ko_model, model)]
    assert project.model_for(project.fingerprint()) == model
    assert ko_project.model_for(ko_project.fingerprint()) == ko_model


def test_a_locale_without_a_normaliser_trains_and_fingerprints(ko_project):
    assert ko_project.locales() == ["ko", "zh"]
    assert ko_project.normalizer_files() == []  # nlu_data/ko has no dialects/lexicon
    assert len(Project(ko_project.root).normalizer_files()) == 2  # zh has both
    check_inputs(ko_project)  # raises on a broken or missing data file
    assert ko_project.fingerprint() != Project(ko_project.root).fingerprint()


@pytest.mark.slow
async def test_a_new_dialect_synonym_takes_effect_after_fine_tuning(engine, model, project,
                                                                    tmp_path):
    """In a copy of the project (another path) whose live model is the real one: Rasa
    refuses to fine-tune across any config change, and the synonym changes no config."""
    before = await engine.parse(UTTERANCE)
    assert before["intent"]["name"] != "check_balance"

    edited = copy_project(project.root, tmp_path)
    edited.models_dir.mkdir()
    shutil.copy(model, edited.models_dir / model.name)
    write_live_pointer(edited, model.name)
    dialects = edited.nlu_dir / "dialects.yml"
    text = dialects.read_text(encoding="utf-8")
    dialects.write_text(text.replace("  yue:", "  yue:\n" + SYNONYMS.rstrip("\n"), 1),
                        encoding="utf-8")
    assert "几多水" in dialects.read_text(encoding="utf-8")
    assert edited.fingerprint() != project.fingerprint()

    assert "model trained" in ivr_train(edited, "--locale", "zh", "--finetune")
    tuned = await DialogueEngine.load(edited.latest_model(), DemoBank(),
                                      KnowledgeBase.load(edited.knowledge))
    try:
        after = await tuned.parse(UTTERANCE)
    finally:
        tuned.close()
    assert after["normalized"] == "还剩多少钱"
    assert (after["intent"]["name"], after["dialect"]) == ("check_balance", "yue")
