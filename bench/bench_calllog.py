"""Benchmark: what writing the call log costs a call (turn latency with logging on and off).

Run: .venv/bin/python bench/bench_calllog.py [--calls N] [--concurrency C] [--url SQLALCHEMY_URL]

Scripted zh calls (several shapes) go through the real engine, each input timed, with no
call log and with a ``CallRecorder`` over a fresh SQLite file (WAL, durable commits) and,
with ``--url``, over that database too; a second run without a log shows the noise. The
modes take turns batch by batch, so drift in the machine's speed falls on all of them
alike. Then the store's own write throughput. Events only: no recording audio.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ivr.calllog.recorder import BATCH, CallRecorder
from ivr.calllog.schema import calls, events
from ivr.calllog.store import CallStore
from ivr.core.events import CallEnded, CallEvent, Emit, EventSink, emitter
from ivr.dialogue.bank import DemoBank
from ivr.dialogue.call import Call
from ivr.dialogue.engine import DialogueEngine
from ivr.dialogue.engine_factory import load_engine, stand_in_bank
from ivr.dialogue.simulate import Script, parse_script
from ivr.project import Project

PIN = "123456#"
KNOWN, UNKNOWN = "+8613800000001", "+8613700000000"
SHAPES: dict[str, dict[str, Any]] = {  # realistic calls, as in examples/calls and the tests
    "balance_pin": {"caller": KNOWN, "turns": [
        {"say": "帮我查一下余额"}, {"dtmf": PIN}, {"say": "那信用卡呢"}, {"say": "没有了，谢谢"}]},
    "lost_card": {"caller": KNOWN, "turns": [
        {"say": "我要挂失"}, {"say": "借记卡"}, {"dtmf": PIN}, {"say": "不用了"}]},
    "card_then_pin": {"caller": UNKNOWN, "turns": [
        {"say": "查一下信用卡本期账单"}, {"dtmf": "6258880000005678#"}, {"dtmf": PIN},
        {"hangup": True}]},
    "agent_request": {"caller": KNOWN, "turns": [
        {"say": "转人工"}, {"say": "信用卡账单的问题"}]},
    "fraud": {"caller": KNOWN, "turns": [{"say": "我卡被盗刷了，有好几笔不是我刷的"}]},
    "no_input": {"caller": KNOWN, "turns": [
        {"say": "我想激活新卡"}, {"silence": True}, {"silence": True}]},
}
BENCH_PREFIX = "bench-"  # call ids, so runs against a shared database can be cleaned up


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class CountingStore(CallStore):
    """A store that counts its transactions, to show how the writer batches under load."""

    commits = 0
    largest = 0
    cpu_s = 0.0  # the writer's own CPU: what it takes from the engine (the GIL, 2 cores)

    def write(self, batch: Sequence[tuple[int, CallEvent]], instance: str) -> None:
        t0 = time.thread_time()
        super().write(batch, instance)
        self.cpu_s += time.thread_time() - t0
        self.commits += 1
        self.largest = max(self.largest, len(batch))


@dataclass
class Mode:
    """One way of running calls: no log, or a recorder over one database."""

    name: str
    recorder: CallRecorder | None = None
    turn_ms: dict[int, list[float]] = field(default_factory=dict)  # by concurrency
    stall_ms: dict[int, list[float]] = field(default_factory=dict)
    record_ns: list[int] = field(default_factory=list)  # inside recorder.record
    emit_ns: list[int] = field(default_factory=list)  # CallEvent + record, per event
    turns: int = 0
    flush_ms: list[float] = field(default_factory=list)
    max_pending: int = 0
    pending_at_end: int = 0  # most still queued when a batch's last call ended
    written_before: int = 0
    commit_s_before: float = 0.0

    @property
    def store(self) -> CountingStore:
        assert self.recorder is not None and isinstance(self.recorder.store, CountingStore)
        return self.recorder.store

    def sink(self) -> EventSink | None:
        """``recorder.record``, timed: on the call's path it only numbers and enqueues (the
        event's data is built by ``Call`` with logging off too)."""
        if self.recorder is None:
            return None
        record, into = self.recorder.record, self.record_ns

        def timed(event: CallEvent) -> None:
            t0 = time.perf_counter_ns()
            record(event)
            into.append(time.perf_counter_ns() - t0)
        return timed

    def emit_for(self, call_id: str) -> Emit:
        emit, into = emitter(self.sink(), call_id), self.emit_ns
        if self.recorder is None:
            return emit

        def timed(kind: type[CallEvent], **fields: Any) -> None:
            t0 = time.perf_counter_ns()
            emit(kind, **fields)
            into.append(time.perf_counter_ns() - t0)
        return timed


async def play(script: Script, engine: DialogueEngine, emit: Emit, call_id: str) -> list[float]:
    """``ivr.dialogue.simulate.run_script``, timing each input as the caller waits for it (ms)."""
    call = Call(engine, caller_id=script.caller, locale=script.locale, call_id=call_id,
                transport="simulate", emit=emit)
    t0 = time.perf_counter()
    await call.start()
    timings = [(time.perf_counter() - t0) * 1000]
    for said in script.turns:
        if call.ended:
            break
        t0 = time.perf_counter()
        await call.take(said)
        timings.append((time.perf_counter() - t0) * 1000)
    await call.finish(input_ran_out=True)
    return timings


async def watch(mode: Mode, stalls: list[float], period_s: float = 0.005) -> None:
    """How late a 5 ms timer fires (what a caller's audio would wait for), and how far
    the log's queue falls behind."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(period_s)
        stalls.append((time.perf_counter() - t0 - period_s) * 1000)
        if mode.recorder is not None:
            mode.max_pending = max(mode.max_pending, mode.recorder.pending)


async def batch(mode: Mode, scripts: list[Script], engine: DialogueEngine, bank: DemoBank,
                calls_n: int, concurrency: int, offset: int) -> None:
    bank.reset()  # a frozen card or a locked PIN would change the next call's path
    semaphore = asyncio.Semaphore(concurrency)
    turn_ms = mode.turn_ms.setdefault(concurrency, [])

    async def one(i: int) -> None:
        async with semaphore:
            call_id = f"{BENCH_PREFIX}{uuid.uuid4().hex}"
            timings = await play(scripts[i % len(scripts)], engine, mode.emit_for(call_id),
                                 call_id)
            turn_ms.extend(timings)
            mode.turns += len(timings)

    ticker = asyncio.create_task(watch(mode, mode.stall_ms.setdefault(concurrency, [])))
    await asyncio.gather(*(one(offset + i) for i in range(calls_n)))
    ticker.cancel()
    if mode.recorder is not None:  # from the last event to all of it committed
        mode.pending_at_end = max(mode.pending_at_end, mode.recorder.pending)
        t0 = time.perf_counter()
        if not await asyncio.to_thread(mode.recorder.flush, 30.0):
            raise SystemExit(f"{mode.name}: the call log did not catch up within 30 s")
        mode.flush_ms.append((time.perf_counter() - t0) * 1000)


def event_stream(captured: list[list[CallEvent]]) -> Iterator[tuple[int, CallEvent]]:
    """Real calls' events, over and over, each time as a new call."""
    for n, events_ in enumerate(itertools.cycle(captured)):
        call_id = f"{BENCH_PREFIX}tp-{n}-{uuid.uuid4().hex[:8]}"
        for seq, e in enumerate(events_, start=1):
            yield seq, replace(e, call_id=call_id)


def throughput(store: CallStore, captured: list[list[CallEvent]], size: int,
               seconds: float = 1.0) -> tuple[int, float, float, float]:
    """(events, events/s, ms per commit, CPU ms per commit) writing batches of ``size``
    for about ``seconds``."""
    stream = event_stream(captured)
    written, commits, t0, cpu0 = 0, 0, time.perf_counter(), time.thread_time()
    while commits < 3 or time.perf_counter() - t0 < seconds:
        store.write(list(itertools.islice(stream, size)), "bench")
        written, commits = written + size, commits + 1
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    return written, written / elapsed, elapsed / commits * 1000, cpu / commits * 1000


def clean(store: CallStore) -> None:
    """Take this benchmark's calls out of a database it shares with others."""
    with store.engine.begin() as db:
        for table in (events, calls):
            db.execute(table.delete().where(table.c.call_id.startswith(BENCH_PREFIX)))


def us(ns: Sequence[int], q: float) -> str:
    return f"{percentile(ns, q) / 1000:.1f}"


def report(modes: list[Mode], concurrencies: list[int]) -> None:
    base = modes[0]
    print("\nTurn latency (ms, each input until the caller hears the answer; Δ vs log off)")
    print(f"{'conc':>4}  {'log':<10} {'turns':>5}  {'p50':>6} {'p95':>6} {'p99':>6}  "
          f"{'Δp50':>6} {'Δp95':>6} {'Δp99':>6}  {'loop stall p99':>14}")
    for c in concurrencies:
        for mode in modes:
            ms, stalls = mode.turn_ms[c], mode.stall_ms[c]
            figures = [percentile(ms, q) for q in (0.5, 0.95, 0.99)]
            deltas = [f - percentile(base.turn_ms[c], q) for f, q in
                      zip(figures, (0.5, 0.95, 0.99), strict=True)]
            delta = "" if mode is base else " ".join(f"{d:+6.1f}" for d in deltas)
            print(f"{c:>4}  {mode.name:<10} {len(ms):>5}  "
                  + " ".join(f"{f:6.1f}" for f in figures)
                  + f"  {delta:<20}  {percentile(stalls, 0.99):11.1f} ms")

    logged = [m for m in modes if m.recorder is not None]
    print("\nOn the call's path (µs per event; emit = CallEvent + record)")
    print(f"{'log':<10} {'events':>6} {'per turn':>8}  {'record p50':>10} {'p99':>6} "
          f"{'max':>7}  {'emit p50':>8} {'p99':>6}  {'per turn':>8}")
    for mode in logged:
        n = len(mode.record_ns)
        print(f"{mode.name:<10} {n:>6} {n / mode.turns:>8.2f}  {us(mode.record_ns, 0.5):>10} "
              f"{us(mode.record_ns, 0.99):>6} {max(mode.record_ns) / 1000:>7.1f}  "
              f"{us(mode.emit_ns, 0.5):>8} {us(mode.emit_ns, 0.99):>6}  "
              f"{sum(mode.emit_ns) / mode.turns / 1000:>8.1f}")

    print("\nThe writer thread (durable commits, whatever is queued in one transaction; flush: "
          "last event to all committed, flush() polls every 5 ms)")
    print(f"{'log':<10} {'written':>7} {'commits':>7} {'ev/commit':>9} {'largest':>7}  "
          f"{'ms/commit':>9} {'cpu ms':>6} {'ms/event':>8}  {'max pending':>11} {'at end':>6}  "
          f"{'flush p50':>9} {'max':>6}  {'left':>4}")
    for mode in logged:
        assert mode.recorder is not None
        written = mode.recorder.written - mode.written_before
        commit_s = mode.recorder.commit_s - mode.commit_s_before
        commits = mode.store.commits
        print(f"{mode.name:<10} {written:>7} {commits:>7} {written / commits:>9.2f} "
              f"{mode.store.largest:>7}  {commit_s / commits * 1000:>9.2f} "
              f"{mode.store.cpu_s / commits * 1000:>6.2f} "
              f"{commit_s / written * 1000:>8.2f}  {mode.max_pending:>11} "
              f"{mode.pending_at_end:>6}  "
              f"{statistics.median(mode.flush_ms):>6.1f} ms {max(mode.flush_ms):>6.1f}  "
              f"{mode.recorder.pending:>4}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--calls", type=int, default=90,
                        help="calls per log mode and concurrency level")
    parser.add_argument("--concurrency", type=int, default=10, help="calls in flight at once")
    parser.add_argument("--rounds", type=int, default=6,
                        help="batches each mode's calls are split into, modes taking turns")
    parser.add_argument("--url", help="also log into this database (e.g. "
                        "postgresql://postgres@127.0.0.1:5432/test); its rows are removed after")
    args = parser.parse_args()
    project = Project.discover()
    bank = stand_in_bank()  # the scripted calls are the demo customers'
    started = time.perf_counter()
    engine = await load_engine(project, args.model, bank=bank)
    print(f"model load: {time.perf_counter() - started:.1f} s ({engine.model_path.name})")
    scripts = [parse_script(data, Path(f"<{name}>")) for name, data in SHAPES.items()]

    # Warm-up (the first turns build Rasa's caches), keeping the events for the store test.
    captured: list[list[CallEvent]] = []
    outcomes: dict[str, Counter[str]] = {name: Counter() for name in SHAPES}
    for _ in range(3):
        for name, script in zip(SHAPES, scripts, strict=True):
            bank.reset()
            kept: list[CallEvent] = []
            call_id = f"{BENCH_PREFIX}{uuid.uuid4().hex}"
            await play(script, engine, emitter(kept.append, call_id), call_id)
            captured.append(kept)
            end = kept[-1]
            outcomes[name][(end.outcome if isinstance(end, CallEnded) else None) or "?"] += 1
    print("shapes: " + ", ".join(
        f"{name} ({len(SHAPES[name]['turns'])} inputs, {'/'.join(o)})"
        for name, o in outcomes.items()))

    # The SQLite file goes where the engine keeps its log (var/), not in /tmp (often tmpfs,
    # where durable commits cost nothing).
    var = project.root / "var"
    var.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=var, prefix="bench-calllog-") as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'calls.sqlite3'}"}
        if args.url:
            name = args.url.split(":")[0].split("+")[0]
            urls[name if name not in urls else f"{name}-url"] = args.url
        modes = [Mode("off")]
        for name, url in urls.items():
            recorder = CallRecorder(CountingStore(url), "bench")
            mode = Mode(name, recorder)
            for script in scripts:  # open connections, compile statements: not per call
                call_id = f"{BENCH_PREFIX}{uuid.uuid4().hex}"
                await play(script, engine, emitter(recorder.record, call_id), call_id)
            recorder.flush()
            mode.written_before, mode.commit_s_before = recorder.written, recorder.commit_s
            mode.store.commits = mode.store.largest = 0
            mode.store.cpu_s = 0.0
            modes.append(mode)
        modes.append(Mode("off-again"))  # the same as "off": how far apart noise alone puts them

        concurrencies = sorted({1, args.concurrency})
        per_round = max(1, args.calls // args.rounds)
        t0 = time.perf_counter()
        for c in concurrencies:
            for r in range(args.rounds):
                for mode in modes if r % 2 == 0 else modes[::-1]:
                    await batch(mode, scripts, engine, bank, per_round, c, r * per_round)
        print(f"calls: {per_round * args.rounds} per mode and concurrency level, "
              f"{len(modes)} modes, concurrency {'/'.join(map(str, concurrencies))}, "
              f"in {time.perf_counter() - t0:.0f} s")
        report(modes, concurrencies)

        print(f"\nStore write throughput (events from real calls, one transaction per batch; "
              f"the writer takes up to {BATCH})")
        print(f"{'store':<10} {'batch':>5} {'events':>7} {'events/s':>9} {'ms/commit':>9} "
              f"{'cpu ms':>6}")
        for mode in modes:
            if mode.recorder is None:
                continue
            mode.recorder.close()
            for size in (1, 10, 100, BATCH):
                n, rate, ms, cpu_ms = throughput(mode.store, captured, size)
                print(f"{mode.name:<10} {size:>5} {n:>7} {rate:>9.0f} {ms:>9.2f} {cpu_ms:>6.2f}")
            clean(mode.store)
            mode.store.close()
    engine.close()


if __name__ == "__main__":
    from ivr.cli import quiet_cli_warnings

    quiet_cli_warnings()
    asyncio.run(main())
