"""A call's events as a readable, turn-by-turn timeline (``ivr calls show``, the console)."""

from __future__ import annotations

import time
from typing import Any


def timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries ``{t, who, text, detail}``: ``t`` seconds from the call's first event, ``who``
    one of caller, bot, engine; ``detail`` what an ops reader checks (ASR alternatives, the
    NLU ranking, actions, slots)."""
    if not events:
        return []
    t0 = events[0]["at"]
    voiced = any(e["kind"] == "prompt" for e in events)  # prompts as played, else as said
    barged = {m for e in events if e["kind"] == "barge_in" for m in e["data"].get("marks", [])}
    out: list[dict[str, Any]] = []

    def add(e: dict[str, Any], who: str, text: str, detail: str = "") -> None:
        out.append({"t": round(e["at"] - t0, 2), "who": who, "text": text, "detail": detail,
                    "kind": e["kind"], "seq": e["seq"]})

    for e in events:
        d, kind = e["data"], e["kind"]
        if kind == "start":
            add(e, "engine", f"call on {d.get('transport')} from {d.get('caller') or 'unknown'}"
                f", locale {d.get('locale')}, model {d.get('model')}")
        elif kind == "language":
            add(e, "engine", f"language {d.get('locale')} (by {d.get('by')})")
        elif kind == "prompt":
            cut = " [barged in]" if d.get("mark") in barged else ""
            add(e, "bot", f"{d.get('text')}{cut}", f"{d.get('name') or 'prompt'}, {d.get('ms')} ms")
        elif kind == "greeting" and not voiced:
            for text in d.get("prompts", []):
                add(e, "bot", text)
        elif kind == "dtmf":
            add(e, "caller", f"key {d.get('digit')}")
        elif kind == "timer":
            add(e, "engine", f"timer: {d.get('timer')}")
        elif kind == "turn":
            add(e, "caller", _said(d), _understood(d))
            if not voiced:
                for text in d.get("prompts", []):
                    add(e, "bot", text)
        elif kind == "verification":
            add(e, "engine", f"verification: {d.get('state')}"
                + (f" ({d.get('failed_attempts')} failed)" if d.get("failed_attempts") else ""))
        elif kind == "signal":
            add(e, "engine", f"misroute signal: {d.get('signal')} (turn {d.get('turn')})")
        elif kind == "route":
            add(e, "engine", f"escalated to {d.get('queue')} ({d.get('reason')}), priority "
                f"{d.get('priority')}, skills {', '.join(d.get('skills') or []) or '-'}")
        elif kind == "hangup":
            add(e, "caller", "hangs up" + (f" while saying “{d['heard']}”" if d.get("heard")
                                            else ""))
        elif kind == "error":
            add(e, "engine", f"error: {d.get('error')}")
        elif kind == "end":
            route = (d.get("queue") and f" → {d['queue']}") or ""
            add(e, "engine", f"end: {d.get('outcome')}{route}")
    return out


def _said(turn: dict[str, Any]) -> str:
    said = turn.get("input", {})
    if "say" in said:
        return f"“{said['say']}”" + (" (not in the expected phrases)" if said.get("unmatched")
                                     else "")
    if "dtmf" in said:
        return f"keys {said['dtmf']}"
    if said.get("silence"):
        return "(silence)"
    return "hangs up"


def _understood(turn: dict[str, Any]) -> str:
    parts = []
    asr = turn.get("asr") or {}
    if asr.get("alternatives"):
        parts.append("ASR: " + " | ".join(f"{a['text']} ({a['score']})"
                                          for a in asr["alternatives"]))
    if turn.get("intent"):
        ranking = turn.get("intent_ranking") or []
        shown = ", ".join(f"{r['name']} {r['confidence']:.2f}" for r in ranking[:3])
        parts.append(f"NLU: {turn['intent']} {turn.get('confidence') or 0:.2f}"
                     + (f" [{shown}]" if shown else "")
                     + (f", dialect {turn['dialect']}" if turn.get("dialect") else ""))
    if turn.get("actions"):
        parts.append("actions: " + ", ".join(turn["actions"]))
    slots = {k: v for k, v in (turn.get("slots") or {}).items() if k != "requested_slot"}
    if slots:
        parts.append("slots: " + ", ".join(f"{k}={v}" for k, v in slots.items()))
    return "; ".join(parts)


def render(call: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """The timeline as text for a terminal."""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(call["started_at"]))
    head = (f"call {call['call_id']}  {started}  {call.get('status')}  "
            f"{call.get('outcome') or '-'}"
            + (f" → {call['queue']} ({call.get('reason')})" if call.get("queue") else "")
            + (f"  recording {call['recording']}" if call.get("recording") else ""))
    lines = [head]
    for entry in timeline(events):
        lines.append(f"  {entry['t']:7.2f}s  {entry['who']:<6}  {entry['text']}")
        if entry["detail"]:
            lines.append(f"  {'':>8}  {'':<6}    {entry['detail']}")
    return "\n".join(lines)
