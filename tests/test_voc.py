"""The monthly voice-of-the-customer export, from real calls in the call log (both stores)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from conftest import KNOWN

from ivr.calllog.recorder import CallRecorder
from ivr.calllog.store import CallStore
from ivr.dialogue.simulate import parse_script, run_script
from ivr.errors import IvrError
from ivr.trainer.voc import Month, export, this_month


async def test_the_export_counts_what_callers_asked_for_and_where_they_were_failed(
        engine: Any, store_url: str, tmp_path: Path) -> None:
    store = CallStore(store_url)
    recorder = CallRecorder(store, "voc-test")
    scripts = [
        [{"say": "查一下余额"}, {"dtmf": "123456#"}, {"say": "没有了"}],  # served
        [{"say": "查余额"}, {"dtmf": "123456#"}, {"say": "不用了"}],      # served
        [{"silence": True}, {"silence": True}],                           # failed: no input
        [{"say": "我的卡被盗刷了"}],                                        # fraud: routed
    ]
    for turns in scripts:
        await run_script(parse_script({"caller": KNOWN, "turns": turns}, Path("<test>")),
                         engine, None, recorder.record)
    recorder.close()

    csv_path, chart, rows = export(store, Month.parse(this_month()), tmp_path)
    store.close()
    by_intent = {r["intent"]: r for r in rows}
    assert by_intent["check_balance"]["calls"] == 2
    assert by_intent["check_balance"]["containment"] == 1.0
    assert by_intent["fraud_report"]["escalated"] == 1
    assert by_intent["fraud_report"]["escalated_no_input"] == 0
    silent = by_intent["(none)"]
    assert silent["escalated_no_input"] == 1 and silent["misrouted_calls"] == 1
    everything = rows[-1]
    assert everything["intent"] == "all" and everything["calls"] == 4
    assert everything["containment"] == 0.5
    assert rows[0]["intent"] == "check_balance"  # the most asked first

    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 with a BOM as UTF-8
    read = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [r["intent"] for r in read] == [r["intent"] for r in rows]
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_a_month_is_written_as_year_and_month() -> None:
    december = Month.parse("2026-12")
    assert december.end - december.start == 31 * 86400
    with pytest.raises(IvrError, match="2026-11"):
        Month.parse("November")
