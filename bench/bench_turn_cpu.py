"""Benchmark: CPU time per dialogue turn, and where it goes (cProfile).

Runs the example call scripts of one locale (examples/calls) through the real engine,
one call at a time, and reports CPU seconds per turn: of the whole process
(``time.process_time``: TensorFlow's threads included) and of the dialogue thread alone
(``time.thread_time`` read on it), the serial stage every call's turns queue for. CPU
time, unlike wall time, barely moves when other processes share the cores, so a before
and after on a busy machine still compare (docs/capacity.md).

Warm-up: the first pass over the scripts is not measured (TensorFlow traces its graphs
and Python fills its caches on the first turns). ``--runs`` measured passes follow; the
figures are min / median / max over them.

``--rasa-validation`` keeps Rasa's own check of action results (the JSON schema checked
against its metaschema on every action) for the before figure; ``--profile`` prints the
dialogue thread's top functions by cumulative time over the measured passes.

Run: .venv/bin/python bench/bench_turn_cpu.py [--locale ko] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


async def on_thread(engine: Any, fn: Any) -> Any:
    """Run ``fn`` on the engine's dialogue thread (where its Rasa work runs)."""
    async def call() -> Any:
        return fn()
    return await engine._on_dialogue_thread(call())


async def one_pass(engine: Any, scripts: list[Any], bank: Any) -> int:
    from ivr.dialogue.simulate import run_script

    bank.reset()
    turns = 0
    for script in scripts:
        result = await run_script(script, engine)
        turns += len(result["turns"]) + 1  # + the call start
    return turns


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locale", default="ko")
    parser.add_argument("--runs", type=int, default=5, help="measured passes")
    parser.add_argument("--rasa-validation", action="store_true",
                        help="Rasa's own action-result check (the before figure)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.rasa_validation:
        os.environ["IVR_RASA_ACTION_VALIDATION"] = "1"  # read when the engine loads

    from ivr.dialogue.engine_factory import load_engine, stand_in_bank
    from ivr.dialogue.simulate import load_script
    from ivr.project import Project

    project = Project(ROOT, args.locale)
    scripts = [s for s in (load_script(p) for p in
                           sorted((ROOT / "examples" / "calls").glob("*.yml")))
               if s.locale == args.locale]
    if not scripts:
        raise SystemExit(f"no example call in locale {args.locale}")
    bank = stand_in_bank()
    engine = await load_engine(project, bank=bank)
    await one_pass(engine, scripts, bank)  # warm-up, not measured
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        await on_thread(engine, profiler.enable)
    process, thread, wall = [], [], []
    for _ in range(args.runs):
        p0, w0 = time.process_time(), time.perf_counter()
        t0 = await on_thread(engine, time.thread_time)
        turns = await one_pass(engine, scripts, bank)
        t1 = await on_thread(engine, time.thread_time)
        process.append((time.process_time() - p0) / turns * 1000)
        thread.append((t1 - t0) / turns * 1000)
        wall.append((time.perf_counter() - w0) / turns * 1000)
    if profiler:
        await on_thread(engine, profiler.disable)
    which = "Rasa's own" if args.rasa_validation else "compiled once"
    print(f"{args.locale}: {len(scripts)} scripts, {turns} turns a pass, {args.runs} passes "
          f"after one warm-up pass; action-result schema: {which}")
    for name, values in (("process CPU", process), ("dialogue-thread CPU", thread),
                         ("wall", wall)):
        print(f"  {name:<20} ms/turn: min {min(values):6.1f}  median "
              f"{statistics.median(values):6.1f}  max {max(values):6.1f}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    engine.close()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from ivr.cli import quiet_cli_warnings

    quiet_cli_warnings()
    asyncio.run(main())
