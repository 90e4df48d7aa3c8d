"""The ``ivr`` commands' results as text (or one JSON object a line): parses, scripted
calls, replays, review clusters and labels, evaluation reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ivr.cli.common import EXIT_ERROR
from ivr.core.report import CallReport
from ivr.core.zone import stamp  # every time printed: the bank's zone, with its offset


def print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def parse_output(text: str, parse: dict[str, Any], locale: str) -> dict[str, Any]:
    from ivr.dialogue.call_record import standard_dialect

    return {
        "text": text,
        "normalized": parse.get("normalized", text),
        "intent": parse["intent"]["name"],
        "confidence": round(float(parse["intent"]["confidence"]), 4),
        "entities": [{k: e[k] for k in ("entity", "value", "start", "end") if k in e}
                     for e in parse.get("entities", [])],
        "dialect": parse.get("dialect", standard_dialect(locale)),
        "intent_ranking": [{"name": r["name"], "confidence": round(float(r["confidence"]), 4)}
                           for r in parse.get("intent_ranking", [])[:5]],
    }


def print_call(report: CallReport) -> None:
    print(f"== {report.script} (caller {report.caller or 'unknown'})")
    for prompt in report.greeting:
        print(f"  bot:    {prompt}")
    for turn in report.turns:
        said = turn["input"]
        shown = said.get("say") or (f"#{said['dtmf']}" if "dtmf" in said else
                                    "(silence)" if "silence" in said else "(hangs up)")
        understood = f"  -> {turn['intent']} {turn.get('confidence', 0):.2f}" if turn.get(
            "intent") else ""
        print(f"  caller: {shown}{understood}")
        for prompt in turn.get("prompts", []):
            print(f"  bot:    {prompt}")
    line = f"  => {report.outcome}, topic {report.intent}"
    if report.outcome == "escalated":
        line += (f", queue {report.queue}, reason {report.reason}, "
                 f"priority {report.priority}, skills {report.skills}")
    print(line)


def print_replay(report: dict[str, Any]) -> None:
    from ivr.calllog.replay import route_of

    print(f"replay of {report['call_id']} ({report['locale']}) from its {report['source']}: "
          f"recorded with {report['recorded_model'] or '?'}, replayed with {report['model']}")
    for turn in report["turns"]:
        rec, new = turn["recorded"], turn["replayed"] or {}
        mark = "≠" if turn["differs"] else "="
        print(f"  {mark} turn {turn['n']}: {turn['input']} “{rec.get('heard', '')}”")
        said = ", ".join(map(str, rec.get("prompt_names") or []))
        print(f"      recorded: {rec.get('intent')}  {said}")
        if turn["replayed"] is None:
            print(f"      replayed: {turn.get('note')}")
        elif turn["differs"]:
            heard = f"“{new.get('heard')}” " if new.get("heard") != rec.get("heard") else ""
            print(f"      replayed: {heard}{new.get('intent')}  "
                  f"{', '.join(map(str, new.get('prompt_names') or []))}")
    before, after = route_of(report["recorded"]), route_of(report["replayed"])
    print(f"route: {before} → {after}" + ("  (CHANGED)" if report["route_changed"] else
                                          "  (same)"))


def print_regression(report: dict[str, Any]) -> None:
    print(f"regression report: {report['calls']} {report['locale']} call(s) replayed with "
          f"{report['model']}")
    print(f"  would route elsewhere: {report['changed']}  (better {report['better']}, worse "
          f"{report['worse']}, no label {report['unlabelled']})")
    for c in report["changes"]:
        when = stamp(c["started_at"], seconds=False)
        label = f"  label: {c['label']}" if c.get("label") else ""
        print(f"  {c['direction']:8s} {c['call_id'][:12]}  {when}  {c['from']} → {c['to']}{label}")
    for f in report["failed"]:
        print(f"  not replayed: {f['call_id'][:12]}: {f['error']}")


def print_cluster(cluster: Any) -> None:
    s = cluster.summary()
    print(f"cluster {s['id']}: predicted {s['intent']}, {s['calls']} call(s), "
          f"{s['items']} utterance(s), weight {s['score']:g}")
    for item in cluster.items:
        when = stamp(item.started_at, seconds=False)
        print(f"  {item.key}  {when}  “{item.text}”"
              + (f" → “{item.normalized}”" if item.normalized != item.text else "")
              + (f"  [{item.dialect}]" if item.dialect else ""))
        ranking = ", ".join(f"{r['name']} {r['confidence']:.2f}" for r in item.ranking)
        print(f"      NLU  {item.intent} {item.confidence or 0:.2f}"
              + (f"  [{ranking}]" if ranking else ""))
        for why in item.why:  # what queued it, and where it shows
            said = f" “{why['text']}”" if why["text"] and why["turn"] != item.n else ""
            meant = f" → {why['intent']}" if said and why["intent"] else ""
            print(f"      why  {why['weight']:g} {why['signal']} ({why['en']}), turn "
                  f"{why['turn']}{said}{meant}")
        if item.likely_intent:
            print(f"      meant probably {item.likely_intent}")
        asr = item.asr or {}
        if asr.get("alternatives"):
            print("      ASR  " + " | ".join(f"{a['text']} ({a['score']})"
                                            for a in asr["alternatives"]))
        if asr.get("recording"):
            print(f"      audio {asr['recording']} {asr.get('audio_ms')} ms")
        following, call = item.next["turn"], item.next["call"]
        if following:
            print(f"      next {following['input']} → {following['intent']}")
        print(f"      call {call['outcome']}" + (f" → {call['queue']} ({call['reason']})"
                                                  if call.get("queue") else ""))
        for f in item.next["feedback"]:
            print(f"      agent desktop: {f['kind']} {f['from_queue']} → {f['to_queue']}")


def print_label(result: Any, as_json: bool) -> int:
    """Each utterance's fate; an error exit when any label contradicts an example."""
    if as_json:
        print_json(result.as_dict())
    else:
        for o in result.outcomes:
            print(f"  {o.status:8s} {o.key}  “{o.text}”" + (f"  {o.detail}" if o.detail else ""))
        if result.intent and result.outcomes:
            print(f"{result.intent}: {result.count('added')} example(s) added"
                  + (f" to {result.file}" if result.count("added") else "")
                  + f", {result.count('exists')} already there, {result.count('masked')} "
                  "masked (labelled, not added); the next `ivr train` uses them")
    conflicts = result.count("conflict")
    if conflicts:
        print(f"error: {conflicts} utterance(s) contradict existing examples: not added "
              "(see above)", file=sys.stderr)
        return EXIT_ERROR
    return 0


def format_evaluation(report: dict[str, Any]) -> list[str]:
    """``ivr evaluate``'s report as text: accuracy, calibration, bands, per intent, errors."""
    lines = [f"held-out examples: {report['examples']}  model: {Path(report['model']).name}",
             f"intent accuracy: {report['accuracy']:.3f}   dialect/ASR part: "
             f"{report['dialect_and_asr_accuracy']:.3f} "
             f"(n={report['dialect_and_asr_examples']})",
             "per form:   " + "  ".join(f"{k} {v['accuracy']:.3f} (n={v['n']})"
                                       for k, v in report["per_form"].items())]
    if report["per_phenomenon"]:
        lines.append("per phenomenon:   " + "  ".join(
            f"{k} {v['accuracy']:.3f} (n={v['n']})" for k, v in report["per_phenomenon"].items()))
    bands, rejected = report["bands"], report["rejection"]
    t = bands["thresholds"]
    lines += [
        f"calibration: expected calibration error {report['calibration']['ece']:.3f}",
        f"bands (reject < {t['confirm']:g} <= confirm < {t['accept']:g} <= accept; costly "
        f"{t['costly_accept']:g}, yes/no and menu words {t['control_accept']:g}):",
        f"  accept   {bands['accept']:4d}   accepted wrongly {bands['accepted_wrongly']} "
        f"(false-accept rate {bands['false_accept_rate']:.3f})",
        f"  confirm  {bands['confirm']:4d}   confirmed needlessly "
        f"{bands['confirmed_needlessly']}, caught a wrong one {bands['confirmed_and_caught']} "
        f"(confirm rate {bands['confirm_rate']:.3f})",
        f"  reject   {bands['reject']:4d}   rejected though right {bands['rejected_but_right']}"]
    if rejected["n"]:
        lines.append(f"rejection set: {rejected['n']} utterances, declined "
                     f"{rejected['declined']:.3f}, acted on {rejected['false_accept_rate']:.3f}")
    lines.append(f"  {'intent':22s} {'accuracy':>8s} {'precision':>9s} {'recall':>6s} "
                 f"{'F1':>5s} {'n':>4s}")
    prf = report["precision_recall"]
    for name, v in report["per_intent"].items():
        m = prf.get("rejected" if name in ("nlu_fallback", "out_of_scope") else name, {})
        lines.append(f"  {name:22s} {v['accuracy']:8.3f} {m.get('precision', 0):9.3f} "
                     f"{m.get('recall', 0):6.3f} {m.get('f1', 0):5.3f} {v['n']:4d}")
    if report["errors"]:
        lines.append(f"misclassified ({len(report['errors'])}):")
        lines += [f"  {e['expected']:>20s} -> {e['predicted']:20s} {e['confidence']:.2f}  "
                  f"[{e['form']}] {e['text']}" for e in report["errors"]]
    if calls := report.get("heldout_calls"):
        lines.append(f"held-out calls: {calls['calls']}, as expected {calls['as_expected']:.3f}; "
                     f"with a confirmation {calls['with_confirmation']:.3f}")
        lines.append("  per tag:  " + "  ".join(f"{k} {v['as_expected']:.2f} (n={v['n']})"
                                               for k, v in calls["per_tag"].items()))
        for c in calls["not_as_expected"]:
            lines.append(f"  {c['call']}: " + ", ".join(
                f"{k} {w['got']!r} (expected {w['expected']!r})" for k, w in c["wrong"].items()))
    return lines
