"""Benchmark: N concurrent Korean calls over Twilio Media Streams on loopback, real audio.

Starts ``ivr serve`` as its own process, then for each N runs N calls at once. Each call
streams espeak-ng speech in real time (20 ms frames), is decoded by the real Vosk Korean
model, understood by the Korean Rasa model, and answered with prompt audio. Prints, per N:
ASR real-time factor, end-of-speech -> first prompt audio latency p50/p95 (as the caller
measures it: from the last frame of speech to the first frame of the answer, so it
includes the end-of-speech silence Vosk waits for), event-loop lag p99 (server side),
server CPU and RSS per call, and the load generator's own CPU (this process: if it nears a
core, the figures are the generator's, not the server's). Then, for every turn, where its
time went, p50/p95/p99 per stage (endpoint wait, final transcript, NLU, dialogue queue,
dialogue, prompt synthesis or cache, and the server's whole part up to the first prompt
audio), read from the call log's events, where the engine timed them (bench/turn_stages.py).

Warm-up: the server warms itself before it listens (ivr/voice/warmup.py; the bench
prints what /health says it warmed); then ``--warmup-calls`` whole calls (default 1) run
unmeasured and their latencies are printed apart, so a cold path left shows up there.
Each step runs ``--runs`` times (default 3), and a summary gives min/median/max of the
latency percentiles over the runs: on a shared machine one run proves little.

With ``--capacity`` it finds the real-time capacity instead: the most calls at once for
which every call ends as expected, latency p95 stays within 1.5 s and event-loop lag p99
within 100 ms (N doubles until one fails, then a bisection); ``--write`` stores it in
``var/capacity.json``, which ``ivr serve`` takes as its call limit (docs/capacity.md).

Run: .venv/bin/python bench/bench_gateway.py [--calls 1 5 10 20] [--runs 3] [--stagger-s 0]
                                            [--capacity [--write]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from phones import TwilioPhone, silence, speak  # noqa: E402
from turn_stages import stage_table, turn_stages  # noqa: E402

from ivr.calllog.store import CallStore  # noqa: E402
from ivr.core.events import CallEvent, PromptPlayed, TranscriptFinal, TurnTaken  # noqa: E402

CALLER = "+8613800000001"
UTTERANCES = ["환율", "아니요"]  # exchange rates, then "nothing else": a whole short call
CLK_TCK = os.sysconf("SC_CLK_TCK")
# What "real time" means for a caller (docs/capacity.md).
MAX_P95_S = 1.5
MAX_LAG_P99_S = 0.1
STAGGER_S = 0.0  # --stagger-s


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    text = await (await http.get(f"{url}/metrics")).text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(ivr_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def lag_p99(before: dict[str, float], after: dict[str, float]) -> float:
    """p99 from the histogram's buckets: the upper bound of the bucket it falls in."""
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', k).group(1)), after[k] - before.get(k, 0.0))
        for k in after if k.startswith("ivr_event_loop_lag_seconds_bucket"))
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= 0.99 * total:
            return le
    return float("nan")


async def watch_rss(pid: int, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], rss_mb(pid))
        await asyncio.sleep(0.2)


async def say_and_time(phone: Any, pcm: bytes) -> float:
    """Say ``pcm`` in real time (20 ms frames), keeping the line open with silence after
    it as a telephone does: seconds from the last frame of speech to the answer's first
    audio. On the plain socket the answer opens with its prompt message, after the
    ``clear`` of a barge-in, so what was already on its way of the prompts the caller
    cut off is not taken for it; Twilio has no prompt message: there the first audio
    after the speech counts."""
    for i in range(0, len(pcm), 320):
        await phone.send_audio(pcm[i:i + 320])
        await asyncio.sleep(0.02)
    spoke_at = time.perf_counter()
    line = asyncio.create_task(_open_line(phone))
    try:
        await asyncio.wait_for(_answer(phone), 60)
        latency = time.perf_counter() - spoke_at
        await asyncio.sleep(0.5)
    finally:
        line.cancel()
    return latency


async def _answer(phone: Any) -> None:
    """Until the answer's first audio arrives (or the call ends)."""
    if phone.transport == "websocket":
        since = len(phone.events)
        while not phone.closed.is_set():
            new = phone.events[since:]
            if "clear" in new:  # what came before it was cut off
                since += len(new) - new[::-1].index("clear")
            elif "prompt" in new:
                break
            await asyncio.sleep(0.005)
    heard = phone.audio_bytes
    while phone.audio_bytes == heard and not phone.closed.is_set():
        await asyncio.sleep(0.005)


def stop(server: subprocess.Popen, sig: int, wait_s: float) -> None:
    """Stop ``ivr serve`` with ``sig``; killed if it has not exited after ``wait_s``."""
    server.send_signal(sig)
    try:
        server.wait(wait_s)
    except subprocess.TimeoutExpired:
        server.kill()


async def _open_line(phone: Any) -> None:
    """Silence every 20 ms, as a telephone stream never stops, until cancelled."""
    frame = silence(20)
    while not phone.closed.is_set():
        await phone.send_audio(frame)
        await asyncio.sleep(0.02)


async def one_call(url: str, speech: list[bytes], delay_s: float = 0.0
                   ) -> tuple[list[float], bool]:
    """A whole call in real time: end-of-speech -> first answer audio latencies, and
    whether the call ended as it should (goodbye after 아니요) within a minute."""
    await asyncio.sleep(delay_s)
    phone = await TwilioPhone().connect(f"{url}/twilio", caller=CALLER, locale="ko")
    await phone.wait_prompts(2, timeout=120)
    latencies = [await say_and_time(phone, pcm) for pcm in speech]
    try:
        await phone.wait_closed(60)
    except asyncio.TimeoutError:
        await phone.ws.close()
        return latencies, False
    return latencies, True


async def settled(http: aiohttp.ClientSession, http_url: str) -> None:
    """Until the server's call log has written every event (its stages are read there)."""
    for _ in range(200):
        health = await (await http.get(f"{http_url}/health")).json()
        if not health["call_log"]["pending"]:
            return
        await asyncio.sleep(0.05)


async def stages_since(http: aiohttp.ClientSession, http_url: str, log_url: str,
                       since: float) -> list[dict[str, float]]:
    """Every spoken turn of the calls started since ``since``: seconds per stage."""
    await settled(http, http_url)

    def read() -> dict[str, list[CallEvent]]:
        store = CallStore(log_url)
        try:
            return store.events_by_call([TranscriptFinal, TurnTaken, PromptPlayed], since=since)
        finally:
            store.close()

    by_call = await asyncio.to_thread(read)
    return [t for events in by_call.values() for t in turn_stages(events)]


async def step(http: aiohttp.ClientSession, url: str, server: subprocess.Popen[str],
               speech: list[bytes], n: int, log_url: str | None = None) -> dict[str, float]:
    """N calls at once; prints and returns the row (and, with ``log_url``, the stages)."""
    http_url = url.replace("ws://", "http://")
    idle_rss = rss_mb(server.pid)
    since, own_cpu0 = time.time(), time.process_time()
    before, cpu0, t0 = await scrape(http, http_url), cpu_seconds(server.pid), time.perf_counter()
    peak = [idle_rss]
    watcher = asyncio.create_task(watch_rss(server.pid, peak))
    # --stagger-s: calls start spread over that many seconds. At 0 they start, and speak,
    # in lockstep: every turn reaches the serial dialogue stage at once, the worst case.
    results = await asyncio.gather(*(one_call(url, speech, i * STAGGER_S / n)
                                     for i in range(n)))
    watcher.cancel()
    wall, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
    own_cpu = time.process_time() - own_cpu0
    after = await scrape(http, http_url)
    audio = after["ivr_asr_audio_seconds_total"] - before.get("ivr_asr_audio_seconds_total", 0)
    decode = after["ivr_asr_decode_seconds_total"] - before.get(
        "ivr_asr_decode_seconds_total", 0)
    lat = [x for r, _ in results for x in r]
    row = {"calls": n, "ended_ok": sum(ok for _, ok in results),
           "asr_rtf": decode / audio if audio else 0.0, "p50_s": percentile(lat, 0.5),
           "p95_s": percentile(lat, 0.95), "lag_p99_s": lag_p99(before, after),
           "cpu_per_call": cpu / wall / n, "rss_mb_per_call": (peak[0] - idle_rss) / n,
           "generator_cpu": own_cpu / wall}
    print(f"{n:>5} {row['ended_ok']:>8} {row['asr_rtf']:>8.3f} {row['p50_s'] * 1000:>9.0f} ms "
          f"{row['p95_s'] * 1000:>4.0f} ms {'<= %g ms' % (row['lag_p99_s'] * 1000):>13} "
          f"{100 * row['cpu_per_call']:>8.1f}% {row['rss_mb_per_call']:>6.1f} MB "
          f"{100 * row['generator_cpu']:>8.1f}%", flush=True)
    if log_url:
        print("\n".join(stage_table(await stages_since(http, http_url, log_url, since))),
              flush=True)
    return row


def summary(rows: list[dict[str, float]]) -> None:
    """min / median / max over the runs of each step."""
    print("over the runs (min / median / max):")
    for n in dict.fromkeys(int(r["calls"]) for r in rows):
        mine = [r for r in rows if r["calls"] == n]
        cells = []
        for key in ("p50_s", "p95_s"):
            values = [r[key] * 1000 for r in mine]
            cells.append(f"{key[:3]} {min(values):.0f} / {statistics.median(values):.0f} / "
                         f"{max(values):.0f} ms")
        print(f"{n:>5} calls, {len(mine)} runs: {', '.join(cells)}", flush=True)


def real_time(row: dict[str, float]) -> bool:
    return (row["ended_ok"] == row["calls"] and row["p95_s"] <= MAX_P95_S
            and row["lag_p99_s"] <= MAX_LAG_P99_S)


async def find_capacity(http: aiohttp.ClientSession, url: str, server: subprocess.Popen[str],
                        speech: list[bytes]) -> tuple[int, list[dict[str, float]]]:
    """Double N until a step is not real time, then bisect between the last good and the
    first bad to within 10 %."""
    rows: list[dict[str, float]] = []
    good, bad, n = 0, 0, 5
    while not bad:
        rows.append(await step(http, url, server, speech, n))
        good, bad, n = (n, 0, n * 2) if real_time(rows[-1]) else (good, n, n)
    while bad - good > max(1, good // 10):
        n = (good + bad) // 2
        rows.append(await step(http, url, server, speech, n))
        good, bad = (n, bad) if real_time(rows[-1]) else (good, n)
    return good, rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--capacity", action="store_true",
                        help="find the real-time capacity instead of running --calls")
    parser.add_argument("--write", action="store_true",
                        help="with --capacity: store it in var/capacity.json for ivr serve")
    parser.add_argument("--runs", type=int, default=3, help="runs of each --calls step")
    parser.add_argument("--warmup-calls", type=int, default=1,
                        help="whole calls run first, not measured")
    parser.add_argument("--stagger-s", type=float, default=0.0,
                        help="start a step's calls spread over this many seconds (default: "
                             "all at once, in lockstep)")
    args = parser.parse_args()
    global STAGGER_S
    STAGGER_S = args.stagger_s
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    scratch = tempfile.TemporaryDirectory(prefix="ivr-bench-")
    log_url = f"sqlite:///{scratch.name}/calls.sqlite3"  # its own log: the stages are read there
    env = {**os.environ, "IVR_CALL_LOG": log_url, "IVR_RECORDINGS": "",
           "IVR_INSTANCE": "bench"}
    server_log = Path(scratch.name) / "serve.log"  # its log (a JSON line per call end)
    server = subprocess.Popen(  # no call limit: the benchmark finds it
        [str(ROOT / ".venv" / "bin" / "ivr"), "serve", "--port", str(port),
         "--audiosocket-port", "-1", "--max-calls", "0"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=server_log.open("w"), text=True, env=env)
    try:
        line = server.stdout.readline()  # printed once the models are loaded and warm
        if "ivr serve" not in line:
            raise SystemExit(f"server did not start: {line!r}\n"
                             + server_log.read_text(errors="replace")[-2000:])
        speech = [speak(u) for u in UTTERANCES]
        async with aiohttp.ClientSession() as http:
            health = await (await http.get(url.replace("ws://", "http://") + "/health")).json()
            print(f"server warm-up: {health.get('warm_up')}")
            for _ in range(args.warmup_calls):
                lat, ok = await one_call(url, speech)
                print(f"warm-up call (not measured): latencies "
                      f"{', '.join(f'{x * 1000:.0f} ms' for x in lat)}, ended ok: {ok}")
            print(f"{'calls':>5} {'ended ok':>8} {'ASR RTF':>8} {'latency p50':>12} {'p95':>7} "
                  f"{'loop lag p99':>13} {'CPU/call':>9} {'RSS/call':>9} {'bench CPU':>9}")
            if not args.capacity:
                rows = [await step(http, url, server, speech, n, log_url)
                        for _ in range(args.runs) for n in args.calls]
                summary(rows)
                return
            capacity, rows = await find_capacity(http, url, server, speech)
        print(f"real-time capacity: {capacity} calls at once (p95 <= {MAX_P95_S:g} s, "
              f"loop lag p99 <= {MAX_LAG_P99_S * 1000:g} ms, every call ended as expected)")
        if args.write:
            path = ROOT / "var" / "capacity.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps({
                "calls": capacity, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime()),
                "cpus": os.cpu_count(), "criteria": {"p95_s": MAX_P95_S,
                                                     "lag_p99_s": MAX_LAG_P99_S},
                "steps": rows}, indent=2) + "\n", encoding="utf-8")
            print(f"written to {path}: ivr serve takes {capacity} calls at once")
    finally:
        stop(server, signal.SIGINT, 20)
        scratch.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
