"""The layout's rules (docs/architecture.md), checked by grep as issue 15 asks: no module
under ivr/ over 400 lines, and no module but the codec names a call event's kind."""

from __future__ import annotations

import re
from pathlib import Path

from ivr.core.events import KINDS

IVR = Path(__file__).resolve().parent.parent / "ivr"
CODEC = IVR / "core" / "events.py"
WORDS = "|".join(KINDS)
# Ways code branches on or builds an event by its kind word: a dict's "kind" compared or
# set to one, an emit or CallEvent given one, the store asked for one by name.
BY_KIND_WORD = re.compile(
    rf"""\[["']kind["']\]\s*(==|!=|in\b)"""
    rf"""|["']kind["']\s*:\s*["']({WORDS})["']"""
    rf"""|\bemit\(\s*["']"""
    rf"""|CallEvent\([^)]*["']({WORDS})["']"""
    rf"""|events_of_kind|\.kind\s*==\s*["']({WORDS})["']""")


def _modules() -> list[Path]:
    return sorted(IVR.rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(IVR)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long


def test_only_the_codec_names_event_kinds() -> None:
    found = [f"{p.relative_to(IVR)}:{i}: {line.strip()}"
             for p in _modules() if p != CODEC
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if BY_KIND_WORD.search(line)]
    assert not found


def test_the_grep_finds_what_it_is_for() -> None:
    """The pattern catches the forms the consumers used before the typed vocabulary."""
    for line in ['if e["kind"] == "turn":', 'emit("turn", n=1)', 'CallEvent(cid, "end", {})',
                 'store.events_of_kind("signal")', 'if event.kind == "speech":',
                 '{"kind": "route", "data": {}}']:
        assert BY_KIND_WORD.search(line), line
    for line in ['if kind == "dtmf":  # a script input', 'target.kind in ("number", "sip")',
                 'if data.get("event") != "start":', 'emit(TurnTaken, n=1)']:
        assert not BY_KIND_WORD.search(line), line
