"""`ivr evaluate`: intent accuracy on the held-out set, per intent and per dialect form."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.dialogue.engine import DialogueEngine
from ivr.errors import DataFileError
from ivr.nlu.normalizer import MANDARIN

# The plain form of each locale's held-out set; every other form (a dialect, ASR errors,
# casual or oddly spaced Korean) is the "dialect and ASR" part of the report.
STANDARD_FORMS = (MANDARIN, "standard")


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    form: str  # zh: mandarin, yue, sc, db, wu, minnan or asr; ko: standard, casual, spacing


def load_heldout(path: Path) -> list[Example]:
    """Held-out utterances in Rasa NLU YAML, each block tagged ``metadata: {form: ...}``."""
    from rasa.shared.nlu.training_data.loading import load_data

    if not path.is_file():
        raise DataFileError(f"{path}: held-out test file not found")
    try:
        data = load_data(str(path))
    except Exception as e:  # Rasa raises many kinds for a broken file
        raise DataFileError(f"{path}: not valid Rasa NLU data ({e})") from None
    examples = []
    for message in data.intent_examples:
        metadata = message.get("metadata") or {}
        form = (metadata.get("intent") or {}).get("form") or metadata.get("form") or MANDARIN
        examples.append(Example(message.get("text"), message.get("intent"), str(form)))
    if not examples:
        raise DataFileError(f"{path}: no examples")
    return examples


def _accuracy(pairs: list[tuple[str, str]]) -> float:
    return round(sum(g == p for g, p in pairs) / len(pairs), 4) if pairs else 0.0


async def evaluate(engine: DialogueEngine, examples: list[Example]) -> dict[str, Any]:
    """Parse every example and score it. A fallback (not understood) counts as wrong."""
    rows = []
    for ex in examples:
        parse = await engine.parse(ex.text)
        rows.append((ex, parse["intent"]["name"], float(parse["intent"]["confidence"])))
    by_intent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_form: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ex, predicted, _ in rows:
        by_intent[ex.intent].append((ex.intent, predicted))
        by_form[ex.form].append((ex.intent, predicted))
    all_pairs = [(ex.intent, p) for ex, p, _ in rows]
    dialect_pairs = [(ex.intent, p) for ex, p, _ in rows if ex.form not in STANDARD_FORMS]
    return {
        "model": str(engine.model_path),
        "examples": len(rows),
        "accuracy": _accuracy(all_pairs),
        "dialect_and_asr_accuracy": _accuracy(dialect_pairs),
        "dialect_and_asr_examples": len(dialect_pairs),
        "per_intent": {k: {"accuracy": _accuracy(v), "n": len(v)}
                       for k, v in sorted(by_intent.items())},
        "per_form": {k: {"accuracy": _accuracy(v), "n": len(v)}
                     for k, v in sorted(by_form.items())},
        "errors": [{"text": ex.text, "form": ex.form, "expected": ex.intent, "predicted": p,
                    "confidence": round(c, 3)} for ex, p, c in rows if p != ex.intent],
        "pairs": all_pairs,
    }


def save_confusion_matrix(pairs: list[tuple[str, str]], path: Path) -> Path:
    """Rows: expected intent; columns: predicted (nlu_fallback included)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({g for g, _ in pairs} | {p for _, p in pairs})
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for gold, predicted in pairs:
        counts[index[gold]][index[predicted]] += 1
    fig, ax = plt.subplots(figsize=(12, 10))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            if n:
                ax.text(j, i, str(n), ha="center", va="center",
                        color="white" if i == j else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title("Held-out intent confusion matrix")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
