"""Benchmark: NLU parse latency (p50/p95) and simulated call turns per second.

Run: .venv/bin/python bench/bench_engine.py [--model PATH] [--calls N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from ivr.dialogue.engine_factory import load_engine, stand_in_bank
from ivr.dialogue.simulate import load_script, run_script
from ivr.project import Project
from ivr.trainer.evaluation import load_heldout


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


STALLS: list[float] = []


async def loop_stalls(period_s: float = 0.005) -> None:
    """How late a 5 ms timer fires: what the caller's audio would wait for."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(period_s)
        STALLS.append((time.perf_counter() - t0 - period_s) * 1000)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--calls", type=int, default=100, help="scripted calls to run")
    parser.add_argument("--concurrency", type=int, default=10, help="calls in flight at once")
    args = parser.parse_args()
    project = Project.discover()
    bank = stand_in_bank()  # the scripted calls are the demo customers'
    started = time.perf_counter()
    engine = await load_engine(project, args.model, bank=bank)
    print(f"model load: {time.perf_counter() - started:.1f} s ({engine.model_path.name})")

    texts = [e.text for e in load_heldout(project.heldout)]
    for text in texts[:20]:  # warm-up
        await engine.parse(text)
    latencies = []
    for text in texts:
        t0 = time.perf_counter()
        await engine.parse(text)
        latencies.append((time.perf_counter() - t0) * 1000)
    print(f"NLU parse latency over {len(latencies)} held-out utterances: "
          f"p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
          f"max {max(latencies):.1f} ms")

    scripts = [load_script(p) for p in sorted((project.root / "examples" / "calls").glob("*.yml"))]
    for concurrency in (1, args.concurrency):
        bank.reset()
        semaphore = asyncio.Semaphore(concurrency)
        turns = 0

        async def one(i: int, semaphore: asyncio.Semaphore = semaphore) -> None:
            nonlocal turns
            async with semaphore:
                result = await run_script(scripts[i % len(scripts)], engine)
                turns += len(result["turns"]) + 1  # + the call start

        t0 = time.perf_counter()
        ticker = asyncio.create_task(loop_stalls())
        await asyncio.gather(*(one(i) for i in range(args.calls)))
        ticker.cancel()
        elapsed = time.perf_counter() - t0
        print(f"simulated calls: {args.calls} calls, {turns} turns, concurrency {concurrency}: "
              f"{turns / elapsed:.1f} turns/s, {args.calls / elapsed:.1f} calls/s; "
              f"event-loop stall p99 {percentile(STALLS, 0.99):.1f} ms, "
              f"max {max(STALLS):.1f} ms")
        STALLS.clear()
    engine.close()


if __name__ == "__main__":
    from ivr.cli import quiet_cli_warnings

    quiet_cli_warnings()
    asyncio.run(main())
