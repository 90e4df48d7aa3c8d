"""`ivr evaluate`: intent accuracy on the held-out set (and on trainers' labelled
utterances), per intent and per dialect form; a candidate model side by side with the live
one."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.dialogue.confidence import ConfidenceBands
from ivr.dialogue.engine import DialogueEngine
from ivr.errors import DataFileError, shown
from ivr.nlu.normalizer import MANDARIN
from ivr.project import Project
from ivr.trainer.calibration import (
    Scored,
    band_outcomes,
    expected_calibration_error,
    precision_recall,
    rejection,
    reliability,
)

# The plain form of each locale's held-out set; every other form (a dialect, ASR errors,
# casual or oddly spaced Korean) is the "dialect and ASR" part of the report.
STANDARD_FORMS = (MANDARIN, "standard")


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    form: str  # zh: mandarin, yue, sc, db, wu, minnan or asr; ko: standard, casual, spacing
    phenomenon: str | None = None  # how callers talk: rejection, negation, traditional...


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
        phenomenon = _tag(metadata, "phenomenon")
        examples.append(Example(message.get("text"), message.get("intent"),
                                str(_tag(metadata, "form") or default_form),
                                str(phenomenon) if phenomenon else None))
    return examples


def _tag(metadata: dict[str, Any], name: str) -> Any:
    """A block's or an example's metadata tag (Rasa nests them by where they were set)."""
    return ((metadata.get("example") or {}).get(name)
            or (metadata.get("intent") or {}).get(name) or metadata.get(name))


def _accuracy(rows: list[Scored]) -> float:
    return round(sum(r.right for r in rows) / len(rows), 4) if rows else 0.0


async def evaluate(engine: DialogueEngine, examples: list[Example],
                   bands: ConfidenceBands | None = None) -> dict[str, Any]:
    """Parse every example and score it. A fallback (not understood) counts as wrong,
    except where nothing should be understood (the rejection set and out_of_scope:
    declining is right there, docs/nlu.md). ``bands``: the locale's confidence bands, whose
    outcomes and the calibration are reported too."""
    bands = bands or ConfidenceBands()
    scored: list[tuple[Example, Scored]] = []
    for ex in examples:
        parse = await engine.parse(ex.text)
        scored.append((ex, Scored(ex.intent, parse["intent"]["name"],
                                  float(parse["intent"]["confidence"]))))
    by_intent: dict[str, list[Scored]] = defaultdict(list)
    by_form: dict[str, list[Scored]] = defaultdict(list)
    by_phenomenon: dict[str, list[Scored]] = defaultdict(list)
    for ex, row in scored:
        by_intent[ex.intent].append(row)
        by_form[ex.form].append(row)
        if ex.phenomenon:
            by_phenomenon[ex.phenomenon].append(row)
    rows = [row for _, row in scored]
    dialect_rows = [row for ex, row in scored if ex.form not in STANDARD_FORMS]
    bins = reliability(rows)
    return {
        "model": str(engine.model_path),
        "examples": len(rows),
        "accuracy": _accuracy(rows),
        "dialect_and_asr_accuracy": _accuracy(dialect_rows),
        "dialect_and_asr_examples": len(dialect_rows),
        "per_intent": {k: {"accuracy": _accuracy(v), "n": len(v)}
                       for k, v in sorted(by_intent.items())},
        "per_form": {k: {"accuracy": _accuracy(v), "n": len(v)}
                     for k, v in sorted(by_form.items())},
        "per_phenomenon": {k: {"accuracy": _accuracy(v), "n": len(v)}
                           for k, v in sorted(by_phenomenon.items())},
        "precision_recall": precision_recall(rows),
        "calibration": {"ece": expected_calibration_error(bins), "bins": bins},
        "bands": band_outcomes(rows, bands),
        "rejection": rejection(rows, bands),
        "errors": [{"text": ex.text, "form": ex.form, "expected": ex.intent,
                    "predicted": row.predicted, "confidence": round(row.confidence, 3),
                    **({"phenomenon": ex.phenomenon} if ex.phenomenon else {})}
                   for ex, row in scored if not row.right],
        "pairs": [(row.expected, row.predicted) for row in rows],
    }


FIGURES = ("accuracy", "dialect_and_asr_accuracy")


def rejection_false_accepts(report: dict[str, Any]) -> float | None:
    """The share of the rejection set the model acted on (None: the set has none)."""
    return report["rejection"]["false_accept_rate"]


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

    out = {"live_model": live["model"], "candidate_model": candidate["model"],
           "examples": live["examples"],
           **{figure: pair(live[figure], candidate[figure]) for figure in FIGURES},
           "per_form": table("per_form"), "per_intent": table("per_intent"),
           "per_phenomenon": table("per_phenomenon")}
    accepted = rejection_false_accepts(live), rejection_false_accepts(candidate)
    if None not in accepted:  # lower is better: delta positive when the candidate is
        out["rejection_false_accept_rate"] = {"live": accepted[0], "candidate": accepted[1],
                                              "delta": round(accepted[0] - accepted[1], 4)}
    return out


async def compare_models(project: Project, live: Path, candidate: Path,
                         labelled: bool = True) -> dict[str, dict[str, Any]]:
    """Both models scored on the held-out set and (``labelled``, when there are any) on
    the trainers' labelled utterances: ``{set: {"live", "candidate", "comparison"}}``."""
    from ivr.dialogue.call_record import standard_dialect
    from ivr.dialogue.engine_factory import load_engine, stand_in_bank

    form = standard_dialect(project.locale)
    sets = {"heldout": load_heldout(project.heldout, form)}
    if labelled and (examples := load_labelled(project.labelled, form)):
        sets["labelled"] = examples
    engines = await asyncio.gather(load_engine(project, live, bank=stand_in_bank()),
                                   load_engine(project, candidate, bank=stand_in_bank()))
    try:
        results = {}
        for name, examples in sets.items():
            bands = ConfidenceBands.for_locale(project.locale_file)
            reports = [await evaluate(engine, examples, bands) for engine in engines]
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
    if "rejection_false_accept_rate" in comparison:
        lines.append(row("rejection: acted on", comparison["rejection_false_accept_rate"]))
    lines += [row(f"form {k}", v) for k, v in comparison["per_form"].items()]
    lines += [row(f"phenomenon {k}", v) for k, v in comparison["per_phenomenon"].items()]
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


# What a held-out call's ``expect:`` may say, each compared with the call's result.
EXPECTED = ("outcome", "queue", "reason", "intent", "served")


async def evaluate_calls(engine: DialogueEngine, paths: list[Path],
                         reset: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Play each held-out call (a simulate script with ``expect:`` and ``tags:``) and
    compare what it came to; also how many calls the engine asked to confirm something
    (extra turns for callers). ``reset``: puts the bank back between calls (a card
    frozen in one stays frozen), as failed verifications are (each call is a fresh day)."""
    from ivr.dialogue.lockout import MemoryLockout
    from ivr.dialogue.simulate import parse_script, run_script
    from ivr.errors import ScriptError
    from ivr.yamlfile import read_mapping

    calls, by_tag = [], defaultdict(list)
    saved = engine.lockout
    try:
        for path in paths:
            data = read_mapping(path, ScriptError)
            expect = data.get("expect")
            if not isinstance(expect, dict) or not set(expect) <= set(EXPECTED):
                raise ScriptError(f"{shown(path)}: expect: must say some of "
                                  f"{', '.join(EXPECTED)}")
            reset()
            engine.lockout = MemoryLockout()
            report = await run_script(parse_script(data, path), engine)
            got = {k: getattr(report, k) for k in EXPECTED}
            wrong = {k: {"expected": v, "got": got[k]} for k, v in expect.items()
                     if got[k] != v and not (k == "served" and v == [] and not got[k])}
            confirmations = sum(t.get("band") == "confirm" for t in report.turns)
            row = {"call": path.name, "ok": not wrong, "wrong": wrong,
                   "turns": len(report.turns), "confirmations": confirmations,
                   "tags": [str(t) for t in data.get("tags") or []]}
            calls.append(row)
            for tag in row["tags"]:
                by_tag[tag].append(row["ok"])
    finally:
        engine.lockout = saved
    n = len(calls) or 1
    return {"calls": len(calls), "as_expected": round(sum(c["ok"] for c in calls) / n, 4),
            "with_confirmation": round(sum(c["confirmations"] > 0 for c in calls) / n, 4),
            "per_tag": {t: {"as_expected": round(sum(v) / len(v), 4), "n": len(v)}
                        for t, v in sorted(by_tag.items())},
            "not_as_expected": [c for c in calls if not c["ok"]]}
