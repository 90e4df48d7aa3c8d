"""`ivr evaluate`: intent accuracy on the held-out set (and on trainers' labelled
utterances), per intent and per dialect form; a candidate model side by side with the live
one."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.dialogue.engine import DialogueEngine
from ivr.errors import DataFileError, shown
from ivr.nlu.normalizer import MANDARIN
from ivr.project import Project

# The plain form of each locale's held-out set; every other form (a dialect, ASR errors,
# casual or oddly spaced Korean) is the "dialect and ASR" part of the report.
STANDARD_FORMS = (MANDARIN, "standard")


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    form: str  # zh: mandarin, yue, sc, db, wu, minnan or asr; ko: standard, casual, spacing


def load_heldout(path: Path, default_form: str = MANDARIN) -> list[Example]:
    """Held-out utterances in Rasa NLU YAML, each block tagged ``metadata: {form: ...}``."""
    if not path.is_file():
        raise DataFileError(f"{shown(path)}: held-out test file not found")
    examples = _load_examples(path, default_form)
    if not examples:
        raise DataFileError(f"{shown(path)}: no examples")
    return examples


def load_labelled(path: Path, default_form: str) -> list[Example]:
    """Trainers' labelled utterances (``nlu_data/<locale>/labelled.yml``); none yet: []."""
    return _load_examples(path, default_form) if path.is_file() else []


def _load_examples(path: Path, default_form: str) -> list[Example]:
    from rasa.shared.nlu.training_data.loading import load_data

    try:
        data = load_data(str(path))
    except Exception as e:  # Rasa raises many kinds for a broken file
        raise DataFileError(f"{shown(path)}: not valid Rasa NLU data ({e})") from None
    examples = []
    for message in data.intent_examples:
        metadata = message.get("metadata") or {}
        form = ((metadata.get("example") or {}).get("form")
                or (metadata.get("intent") or {}).get("form") or metadata.get("form")
                or default_form)
        examples.append(Example(message.get("text"), message.get("intent"), str(form)))
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


FIGURES = ("accuracy", "dialect_and_asr_accuracy")


def compare(live: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any]:
    """Two reports of one test set side by side: each figure, per intent and per form, with
    the candidate's change (``delta``, positive = better)."""

    def pair(a: float, b: float, **extra: Any) -> dict[str, Any]:
        return {"live": a, "candidate": b, "delta": round(b - a, 4), **extra}

    def table(key: str) -> dict[str, Any]:
        names = sorted(set(live[key]) | set(candidate[key]))
        empty = {"accuracy": 0.0, "n": 0}
        return {name: pair(live[key].get(name, empty)["accuracy"],
                           candidate[key].get(name, empty)["accuracy"],
                           n=max(live[key].get(name, empty)["n"],
                                 candidate[key].get(name, empty)["n"]))
                for name in names}

    return {"live_model": live["model"], "candidate_model": candidate["model"],
            "examples": live["examples"],
            **{figure: pair(live[figure], candidate[figure]) for figure in FIGURES},
            "per_form": table("per_form"), "per_intent": table("per_intent")}


async def compare_models(project: Project, live: Path, candidate: Path,
                         labelled: bool = True) -> dict[str, dict[str, Any]]:
    """Both models scored on the held-out set and (``labelled``, when there are any) on
    the trainers' labelled utterances: ``{set: {"live", "candidate", "comparison"}}``."""
    from ivr.call import standard_dialect
    from ivr.live_models import load_engine

    form = standard_dialect(project.locale)
    sets = {"heldout": load_heldout(project.heldout, form)}
    if labelled and (examples := load_labelled(project.labelled, form)):
        sets["labelled"] = examples
    engines = await asyncio.gather(load_engine(project, live), load_engine(project, candidate))
    try:
        results = {}
        for name, examples in sets.items():
            reports = [await evaluate(engine, examples) for engine in engines]
            for report in reports:
                report.pop("pairs")
            results[name] = {"live": reports[0], "candidate": reports[1],
                             "comparison": compare(*reports)}
        return results
    finally:
        for engine in engines:
            engine.close()


def format_comparison(name: str, comparison: dict[str, Any]) -> list[str]:
    """A comparison as text lines: live, candidate and delta in columns."""

    def row(label: str, v: dict[str, Any]) -> str:
        n = f" (n={v['n']})" if "n" in v else ""
        flag = "  worse" if v["delta"] < 0 else ""
        return f"  {label:26s} {v['live']:6.3f} {v['candidate']:9.3f} {v['delta']:+7.3f}{n}{flag}"

    title = f"{name} ({comparison['examples']} utterances)"
    lines = [f"{title:28s} {'live':>6s} {'candidate':>9s} {'delta':>7s}",
             row("intent accuracy", comparison["accuracy"]),
             row("dialect/ASR part", comparison["dialect_and_asr_accuracy"])]
    lines += [row(f"form {k}", v) for k, v in comparison["per_form"].items()]
    lines += [row(k, v) for k, v in comparison["per_intent"].items()]
    return lines


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
