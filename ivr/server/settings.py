"""What ``ivr serve`` is told: its arguments and environment (``ServerSettings``), the
measured capacity, and how many speech decoder processes it runs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ivr.calllog.recorder import CallLogSettings
from ivr.errors import IvrError, shown
from ivr.telephony import Limits
from ivr.voice.session import VoiceSettings


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    audiosocket_host: str = "127.0.0.1"  # the interface Asterisk reaches us on
    audiosocket_port: int = 9092  # 0: any free port (tests); -1: no AudioSocket
    default_locale: str = "zh"
    twilio_auth_token: str | None = field(
        default_factory=lambda: os.environ.get("IVR_TWILIO_AUTH_TOKEN"))
    public_url: str | None = field(default_factory=lambda: os.environ.get("IVR_PUBLIC_URL"))
    ws_token: str | None = field(default_factory=lambda: os.environ.get("IVR_WS_TOKEN"))
    acd_url: str | None = field(default_factory=lambda: os.environ.get("IVR_ACD_URL"))
    # Where Twilio puts escalated callers through, per queue (ivr/telephony/transfer.py)
    queue_numbers: str | None = field(
        default_factory=lambda: os.environ.get("IVR_QUEUE_NUMBERS"))
    pointer_poll_s: float = 3.0  # how often models/live.yml is checked for a promotion
    # what the agent desktop presents on /acd/feedback (default: $IVR_WS_TOKEN)
    acd_token: str | None = field(default_factory=lambda: os.environ.get("IVR_ACD_TOKEN"))
    end_of_speech_ms: int = 500
    # Calls taken at once: $IVR_MAX_CALLS, else the capacity measured on this machine
    # (var/capacity.json, bench/bench_gateway.py --capacity); past it: the busy prompt.
    max_calls: int | None = field(default_factory=lambda: env_int("IVR_MAX_CALLS"))
    drain_s: float = field(default_factory=lambda: float(os.environ.get("IVR_DRAIN_S", 300)))
    # Where the calls' conversations live: Redis for several instances (docs/scaling.md);
    # None: in this process.
    redis_url: str | None = field(default_factory=lambda: os.environ.get("IVR_REDIS_URL"))
    call_log: CallLogSettings | None = None  # None: $IVR_CALL_LOG etc., else under var/
    limits: Limits = field(default_factory=Limits)
    voice: VoiceSettings = field(default_factory=VoiceSettings)
    # HTTP hardening (ivr/server/webguard.py): host names the Host header may give beyond loopback,
    # the bind host and IVR_PUBLIC_URL's; proxies whose X-Forwarded-For is believed (and
    # whose connections are not capped); how long a request head may take; connections
    # one source may hold open (0: no cap).
    allowed_hosts: str | None = field(
        default_factory=lambda: os.environ.get("IVR_ALLOWED_HOSTS"))
    trusted_proxies: str | None = field(
        default_factory=lambda: os.environ.get("IVR_TRUSTED_PROXIES"))
    header_timeout_s: float = field(
        default_factory=lambda: float(os.environ.get("IVR_HEADER_TIMEOUT_S") or 10))
    max_connections_per_source: int = field(
        default_factory=lambda: env_int("IVR_MAX_CONNECTIONS_PER_SOURCE") if os.environ.get(
            "IVR_MAX_CONNECTIONS_PER_SOURCE") else 64)


CAPACITY_FILE = Path("var") / "capacity.json"


def env_int(name: str) -> int | None:
    """A whole number from the environment; None when unset, one error line when wrong."""
    value = os.environ.get(name)
    try:
        return int(value) if value else None
    except ValueError:
        raise IvrError(f"${name} must be a whole number, not {value!r}") from None


def measured_capacity(root: Path) -> int | None:
    """The calls this machine serves in real time, as bench/bench_gateway.py measured and
    wrote it (``var/capacity.json``); None when never measured."""
    path = root / CAPACITY_FILE
    if not path.is_file():
        return None
    try:
        calls = json.loads(path.read_text(encoding="utf-8"))["calls"]
        return int(calls) if int(calls) > 0 else None
    except (ValueError, KeyError, TypeError):
        raise IvrError(f"{shown(path)}: not a capacity measurement (rerun bench/bench_gateway.py "
                       "--capacity --write)") from None


def asr_workers() -> int:
    """Decoder worker processes: one per core by default (decoding is CPU-bound, and a
    crash costs 1/N of the calls); each holds its own copy of the models
    ($IVR_ASR_WORKERS trades them)."""
    return env_int("IVR_ASR_WORKERS") or os.cpu_count() or 2
