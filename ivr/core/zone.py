"""The bank's time zone: one zone for every time a person reads (the CLI, the console) and
for every day a figure is bucketed by (trends, the VOC report).

``IVR_TIMEZONE`` names it (an IANA name, default ``Asia/Shanghai``): a call at 23:30 UTC
is on the next day for a bank in Shanghai, and its staff count it there.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr.errors import IvrError

DEFAULT_ZONE = "Asia/Shanghai"


def zone_name() -> str:
    return os.environ.get("IVR_TIMEZONE", "").strip() or DEFAULT_ZONE


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise IvrError(f"IVR_TIMEZONE={name!r} is not a time zone (e.g. Asia/Shanghai)") from None


def bank_zone() -> tzinfo:
    """The zone ``IVR_TIMEZONE`` names (read each time: tests and servers may set it)."""
    return _zone(zone_name())


def local(at: float) -> datetime:
    """A Unix time as an aware datetime in the bank's zone."""
    return datetime.fromtimestamp(at, bank_zone())


def day(at: float) -> date:
    """The bank's calendar day of a Unix time."""
    return local(at).date()


def offset(at: float | None = None) -> str:
    """The zone's UTC offset at ``at`` (now by default), as ``+08:00``."""
    moment = local(at if at is not None else datetime.now().timestamp())
    delta = moment.utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def stamp(at: float, seconds: bool = True) -> str:
    """How the CLI prints a time: the bank's wall clock with its offset,
    ``2026-12-03 07:30:00 +08:00``."""
    text = local(at).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {offset(at)}"


def midnight(d: date) -> float:
    """The Unix time the bank's day ``d`` begins."""
    return datetime(d.year, d.month, d.day, tzinfo=bank_zone()).timestamp()
