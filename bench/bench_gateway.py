"""Benchmark: N concurrent Korean calls over Twilio Media Streams on loopback, real audio.

Starts ``ivr serve`` as its own process, then for each N runs N calls at once. Each call
streams espeak-ng speech in real time (20 ms frames), is decoded by the real Vosk Korean
model, understood by the Korean Rasa model, and answered with prompt audio. Prints, per N:
ASR real-time factor, end-of-speech -> first prompt audio latency p50/p95 (as the caller
measures it: from the last frame of speech to the first frame of the answer, so it
includes the end-of-speech silence Vosk waits for), event-loop lag p99 (server side), and
server CPU and RSS per call.

Run: .venv/bin/python bench/bench_gateway.py [--calls 1 5 10 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from phones import TwilioPhone, silence, speak  # noqa: E402

CALLER = "+8613800000001"
UTTERANCES = ["환율", "아니요"]  # exchange rates, then "nothing else": a whole short call
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def lag_p99(before: dict[str, float], after: dict[str, float]) -> str:
    """p99 from the histogram's buckets: the upper bound of the bucket it falls in."""
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', k).group(1)), after[k] - before.get(k, 0.0))
        for k in after if k.startswith("ivr_event_loop_lag_seconds_bucket"))
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= 0.99 * total:
            return f"<= {le * 1000:g} ms"
    return "n/a"


async def watch_rss(pid: int, peak: list[float]) -> None:
    while True:
        peak[0] = max(peak[0], rss_mb(pid))
        await asyncio.sleep(0.2)


async def one_call(url: str, speech: list[bytes]) -> tuple[list[float], bool]:
    """A whole call in real time: end-of-speech -> first answer audio latencies, and
    whether the call ended as it should (goodbye after 아니요) within a minute."""
    phone = await TwilioPhone().connect(f"{url}/twilio", caller=CALLER, locale="ko")
    await phone.wait_prompts(2, timeout=120)
    latencies = []
    for pcm in speech:
        for i in range(0, len(pcm), 320):
            await phone.send_audio(pcm[i:i + 320])
            await asyncio.sleep(0.02)
        spoke_at, heard = time.perf_counter(), phone.audio_bytes
        tail = silence(3000)
        for i in range(0, len(tail), 320):
            if phone.audio_bytes > heard or phone.closed.is_set():
                break
            await phone.send_audio(tail[i:i + 320])
            await asyncio.sleep(0.02)
        while phone.audio_bytes == heard and not phone.closed.is_set():
            await asyncio.sleep(0.005)
        latencies.append(time.perf_counter() - spoke_at)
        await asyncio.sleep(0.5)
    try:
        await phone.wait_closed(60)
    except asyncio.TimeoutError:
        await phone.ws.close()
        return latencies, False
    return latencies, True


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 5, 10, 20])
    args = parser.parse_args()
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "ivr"), "serve", "--port", str(port),
         "--audiosocket-port", "-1"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # printed once the models are loaded
        if "ivr serve" not in line:
            raise SystemExit(f"server did not start: {line!r}")
        speech = [speak(u) for u in UTTERANCES]
        http_url = f"http://127.0.0.1:{port}"
        print(f"{'calls':>5} {'ended ok':>8} {'ASR RTF':>8} {'latency p50':>12} {'p95':>7} "
              f"{'loop lag p99':>13} {'CPU/call':>9} {'RSS/call':>9}")
        async with aiohttp.ClientSession() as http:
            for n in args.calls:
                idle_rss = rss_mb(server.pid)
                before, cpu0, t0 = await scrape(http, http_url), cpu_seconds(server.pid), \
                    time.perf_counter()
                peak = [idle_rss]
                watcher = asyncio.create_task(watch_rss(server.pid, peak))
                results = await asyncio.gather(*(one_call(url, speech) for _ in range(n)))
                watcher.cancel()
                wall, cpu = time.perf_counter() - t0, cpu_seconds(server.pid) - cpu0
                after = await scrape(http, http_url)
                audio = after["ivr_asr_audio_seconds_total"] - before.get(
                    "ivr_asr_audio_seconds_total", 0)
                decode = after["ivr_asr_decode_seconds_total"] - before.get(
                    "ivr_asr_decode_seconds_total", 0)
                lat = [x for r, _ in results for x in r]
                ended = sum(ok for _, ok in results)
                p50, p95 = percentile(lat, 0.5) * 1000, percentile(lat, 0.95) * 1000
                print(f"{n:>5} {ended:>8} {decode / audio if audio else 0:>8.3f} {p50:>9.0f} ms "
                      f"{p95:>4.0f} ms {lag_p99(before, after):>13} {100 * cpu / wall / n:>8.1f}% "
                      f"{(peak[0] - idle_rss) / n:>6.1f} MB", flush=True)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    asyncio.run(main())
