"""A call's events as turns, for people: ``ivr calls show`` prints them, the console
draws them."""

from __future__ import annotations

from typing import Any

from ivr.core.events import (
    BargedIn,
    CallEvent,
    Failed,
    Greeted,
    HandoffDelivered,
    MisrouteSignal,
    PromptPlayed,
    Routed,
    TurnTaken,
    VerificationChanged,
    encode,
)
from ivr.core.zone import stamp  # the bank's zone, as every time the CLI prints


def turn_view(events: list[CallEvent]) -> list[dict[str, Any]]:
    """The call as turns: turn 0 is everything before the caller's first input (language
    menu, notice, greeting); each later one holds the caller's input, how it was heard
    (ASR text, alternatives, where in the recording) and understood (intent ranking),
    the actions run, the prompts played after it (and whether the caller barged in on
    them), and the signals, verification changes, route and errors it caused."""
    start = events[0].at if events else 0.0
    barged = {m for e in events if isinstance(e, BargedIn) for m in e.marks}
    turns: list[dict[str, Any]] = [{"n": 0, "at": start, "offset_s": 0.0, "prompts": [],
                                    "signals": [], "verification": [], "errors": []}]
    for e in events:
        turn = turns[-1]
        # A turn's and a prompt's logged data go out as they are (the console draws them).
        match e:
            case TurnTaken():
                turn = {**_logged(e), "at": e.at, "offset_s": round(e.at - start, 3),
                        "said": e.prompts or [], "prompts": [], "signals": [],
                        "verification": [], "errors": []}
                turns.append(turn)
            case PromptPlayed():
                turn["prompts"].append({**_logged(e), "barged": e.mark in barged})
            case MisrouteSignal():
                turn["signals"].append(e.signal)
            case VerificationChanged():
                turn["verification"].append(e.state)
            case Routed():
                turn["route"] = {k: v for k, v in _logged(e).items() if k != "handoff"}
            case HandoffDelivered():  # of the handoff to the ACD
                turn.setdefault("route", {})["delivery"] = e.status
            case Failed():
                turn["errors"].append(e.error)
            case Greeted() if turn["n"] == 0:
                turn["said"] = e.prompts
    for turn in turns:
        if not turn["prompts"]:  # a call with no audio (api): the texts the dialogue gave
            turn["prompts"] = [{"text": text, "barged": False} for text in turn.get("said", [])]
        turn.pop("said", None)
    return turns


def _logged(event: CallEvent) -> dict[str, Any]:
    """An event's fields as the call log holds them (the codec's data)."""
    return encode(event)[1]


def render(call: dict[str, Any], events: list[CallEvent]) -> str:
    """The call's turns as text for a terminal."""
    started = stamp(call["started_at"])
    lines = [f"call {call['call_id']}  {started}  {call.get('transport') or '-'}  caller "
             f"{call.get('caller') or 'unknown'}  {call.get('locale') or '-'}  "
             f"model {call.get('model') or '-'}",
             f"  {call.get('status')}: {call.get('outcome') or 'no outcome'}"
             + (f" → {call['queue']} ({call.get('reason')})" if call.get("queue") else "")
             + (f"  recording {call['recording']}" if call.get("recording") else "")]
    for turn in turn_view(events):
        at = f"{turn['offset_s']:7.2f}s"
        if turn["n"]:
            lines.append(f"{at}  caller  {_said(turn)}")
            lines += [f"{'':10}          {d}" for d in _understood(turn)]
            at = ""
        for prompt in turn["prompts"]:
            cut = "  [barged in]" if prompt.get("barged") else ""
            lines.append(f"{at:>8}  bot     {prompt.get('text')}{cut}")
            at = ""
        for state in turn["verification"]:
            lines.append(f"{'':10}engine  verification: {state}")
        for signal in turn["signals"]:
            lines.append(f"{'':10}engine  misroute signal: {signal}")
        for error in turn["errors"]:
            lines.append(f"{'':10}engine  error: {error}")
        if turn.get("route"):
            r = turn["route"]
            lines.append(f"{'':10}engine  escalated to {r.get('queue')} ({r.get('reason')}), "
                         f"priority {r.get('priority')}, skills "
                         f"{', '.join(r.get('skills') or []) or '-'}"
                         + (f"; handoff {r['delivery']}" if r.get("delivery") else ""))
    return "\n".join(lines)


def _said(turn: dict[str, Any]) -> str:
    said = turn.get("input", {})
    if "say" in said:
        return f"“{said['say']}”" + ("  (not an expected phrase)" if said.get("unmatched")
                                     else "")
    if "dtmf" in said:
        return f"keys {said['dtmf']}"
    return "(silence)" if said.get("silence") else "hangs up"


def _understood(turn: dict[str, Any]) -> list[str]:
    """What an ops reader checks under an input: ASR n-best, NLU ranking, actions, slots."""
    out = []
    asr = turn.get("asr") or {}
    if asr.get("alternatives"):
        out.append("ASR  " + " | ".join(f"{a['text']} ({a['score']})"
                                        for a in asr["alternatives"]))
    if turn.get("intent"):
        ranking = ", ".join(f"{r['name']} {r['confidence']:.2f}"
                            for r in (turn.get("intent_ranking") or [])[:3])
        out.append(f"NLU  {turn['intent']} {turn.get('confidence') or 0:.2f}"
                   + (f"  [{ranking}]" if ranking else "")
                   + (f"  dialect {turn['dialect']}" if turn.get("dialect") else ""))
    if turn.get("actions"):
        out.append("ran  " + ", ".join(turn["actions"]))
    slots = {k: v for k, v in (turn.get("slots") or {}).items() if k != "requested_slot"}
    if slots:
        out.append("set  " + ", ".join(f"{k}={v}" for k, v in slots.items()))
    return out
