"""Soak: the measured real-time capacity for a while, then twice that, on one `ivr serve`.

Starts ``ivr serve`` (its call limit: var/capacity.json, see bench_gateway.py --capacity)
with the call log in a fresh SQLite file, then keeps N Korean callers busy over the plain
WebSocket: each places a call, says 환율 then 아니요 in real time (espeak-ng speech, real
Vosk, real Rasa), and dials again as soon as it ends. Phase 1 keeps N = capacity callers,
phase 2 keeps 2 x capacity. Reports per phase: calls completed, calls turned away (the busy
prompt; such a caller dials again 10 s later) and how fast they heard it, calls failed,
end-of-speech -> answer latency p50/p95/p99, and the server's RSS growth per minute; and
at the end, events lost: every event the server counted, kind by kind
(``ivr_call_events_total``), must be in the call log.

Run: .venv/bin/python bench/bench_soak.py [--minutes 30] [--capacity N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from bench_gateway import free_port, percentile, rss_mb, say_and_time, scrape, stop  # noqa: E402
from phones import PlainPhone, speak  # noqa: E402

from ivr.calllog.store import CallLogError, CallStore  # noqa: E402
from ivr.core.events import CallEnded, kind_of  # noqa: E402

TOKEN = "soak-token"
CALLER = "+8613800000001"
UTTERANCES = ["환율", "아니요"]
BUSY_REDIAL_S = 10  # a caller who heard "all lines are busy" tries again after this


@dataclass
class Phase:
    name: str
    callers: int
    completed: int = 0
    busy: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    busy_first_audio: list[float] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (minute, MB)
    call_ids: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # call id: what the caller saw

    def fail(self, call_id: str, what: str) -> None:
        self.failed += 1
        self.failures.append(f"{call_id}: {what}")


async def one_call(url: str, speech: list[bytes], phase: Phase) -> None:
    call_id = uuid.uuid4().hex
    phase.call_ids.append(call_id)
    dialled = time.perf_counter()
    phone = await PlainPhone().connect(f"{url}/ws", TOKEN, caller=CALLER, locale="ko",
                                       call_id=call_id)
    try:
        while not phone.audio_bytes and not phone.closed.is_set():
            await asyncio.sleep(0.01)
        first_audio = time.perf_counter() - dialled
        await phone.wait_prompts(2, timeout=60)
        if phone.closed.is_set():
            if phone.end and phone.end.get("outcome") == "busy":
                phase.busy += 1
                phase.busy_first_audio.append(first_audio)
                await asyncio.sleep(BUSY_REDIAL_S)
            else:
                phase.fail(call_id, f"closed during the greeting, end {phone.end}")
            return
        for pcm in speech:
            phase.latencies.append(await say_and_time(phone, pcm))
        await phone.wait_closed(60)
        ok = phone.end and phone.end.get("outcome") in ("self_service", "hangup")
        if ok:
            phase.completed += 1
        else:
            phase.fail(call_id, f"end {phone.end}")
    except (asyncio.TimeoutError, aiohttp.ClientError) as e:
        phase.fail(call_id, f"{type(e).__name__} {e} after {len(phone.prompts)} prompts")
        await phone.ws.close()


async def caller(url: str, speech: list[bytes], phase: Phase, until: float) -> None:
    while time.monotonic() < until:
        await one_call(url, speech, phase)


async def run_phase(url: str, speech: list[bytes], phase: Phase, minutes: float,
                    pid: int) -> None:
    started = time.monotonic()
    until = started + minutes * 60

    async def watch() -> None:
        while True:
            phase.rss.append(((time.monotonic() - started) / 60, rss_mb(pid)))
            await asyncio.sleep(10)

    watcher = asyncio.create_task(watch())
    callers = []
    for _ in range(phase.callers):  # dial in over a few seconds, as a queue would
        callers.append(asyncio.create_task(caller(url, speech, phase, until)))
        await asyncio.sleep(0.2)
    await asyncio.gather(*callers)
    watcher.cancel()


def growth_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, MB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def report(phase: Phase) -> None:
    lat = phase.latencies
    busy = phase.busy_first_audio
    print(f"{phase.name}: {phase.callers} callers: {phase.completed} calls completed, "
          f"{phase.busy} turned away (busy prompt after p95 "
          f"{percentile(busy, 0.95) * 1000:.0f} ms), {phase.failed} failed; latency p50 "
          f"{percentile(lat, 0.5) * 1000:.0f} ms, p95 {percentile(lat, 0.95) * 1000:.0f} ms, "
          f"p99 {percentile(lat, 0.99) * 1000:.0f} ms; RSS "
          f"{phase.rss[0][1] if phase.rss else 0:.0f} -> {phase.rss[-1][1] if phase.rss else 0:.0f}"
          f" MB ({growth_per_minute(phase.rss):+.1f} MB/min)", flush=True)
    for failure in phase.failures[:10]:
        print(f"  failed {failure}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="per phase")
    parser.add_argument("--capacity", type=int, help="default: var/capacity.json")
    args = parser.parse_args()
    capacity = args.capacity or json.loads(
        (ROOT / "var" / "capacity.json").read_text(encoding="utf-8"))["calls"]
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="soak-")) / "calls.sqlite3"
    env = {**os.environ, "IVR_WS_TOKEN": TOKEN, "IVR_CALL_LOG": f"sqlite:///{log}",
           "IVR_RECORDINGS": str(log.parent / "recordings"), "IVR_INSTANCE": "soak"}
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "ivr"), "serve", "--port", str(port),
         "--audiosocket-port", "-1", "--max-calls", str(capacity)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, text=True)
    phases = [Phase("at capacity", capacity), Phase("at 2x capacity", 2 * capacity)]
    try:
        line = server.stdout.readline()  # printed once the models are loaded
        if "ivr serve" not in line:
            raise SystemExit(f"server did not start: {line!r}")
        speech = [speak(u) for u in UTTERANCES]
        print(f"capacity {capacity} calls; {args.minutes:g} min per phase; call log {log}",
              flush=True)
        for phase in phases:
            await run_phase(url, speech, phase, args.minutes, server.pid)
            report(phase)
        async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            counted = await scrape(http, url.replace("ws://", "http://"))
    finally:
        stop(server, signal.SIGTERM, 60)  # drains the calls still live
    emitted = {k.split('"')[1]: int(v) for k, v in counted.items()
                if k.startswith("ivr_call_events_total{")}
    store = CallStore(f"sqlite:///{log}")
    ids = [cid for p in phases for cid in p.call_ids]
    per_call = [store.events(logged_as(store, cid)) for cid in ids]
    store.close()
    # The server counts events by their kind word (the metric's label): so are they here.
    logged = Counter(kind_of(e) for events in per_call for e in events)
    one_end = sum(sum(isinstance(e, CallEnded) for e in events) == 1 for events in per_call)
    stored = {kind: logged[kind] for kind in emitted}
    lost = sum(max(0, n - stored[kind]) for kind, n in emitted.items())
    print(f"events counted by the server {sum(emitted.values())}, of those in the call log "
          f"{sum(min(n, stored[k]) for k, n in emitted.items())}: {lost} lost; calls with "
          f"exactly one end record {one_end} of {len(ids)}", flush=True)


def logged_as(store: CallStore, external_id: str) -> str:
    """The engine's id of the call a client started with ``call_id`` = ``external_id``
    (the engine names every call itself); "" when none was logged."""
    try:
        return store.find_call(external_id, exact=True)["call_id"]
    except CallLogError:
        return ""


if __name__ == "__main__":
    asyncio.run(main())
