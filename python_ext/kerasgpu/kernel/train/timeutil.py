"""Durations and deadlines as people write them: "36h", "90 min", "2026-12-01 18:00"."""

from __future__ import annotations

import re
import time
from datetime import datetime

_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hr": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
_REL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$", re.I)


def parse_deadline(text: str | float | None, now: float | None = None) -> float | None:
    """The deadline as epoch seconds: a duration from `now` ("36h", "2d", "90min", "45m") or a local
    date-time ("2026-12-01 18:00", ISO 8601). Raises ValueError for anything else."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    now = time.time() if now is None else now
    s = str(text).strip().strip("'\"")
    m = _REL.match(s)
    if m:
        unit = (m.group(2) or "h").lower()
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in deadline {text!r}: use s, min, h or d")
        return now + float(m.group(1)) * _UNITS[unit]
    try:
        when = datetime.fromisoformat(s.replace("T", " "))
    except ValueError:
        raise ValueError(
            f"can't read the deadline {text!r}: write a duration (36h, 2d, 90min) or a date-time "
            "(2026-12-01 18:00)"
        ) from None
    return when.timestamp() if when.tzinfo else time.mktime(when.timetuple())


def parse_duration(text: str | float) -> float:
    """Seconds in a duration as people write it: "15min", "2h", "90s", "30" (minutes)."""
    if isinstance(text, (int, float)):
        return float(text)
    m = _REL.match(str(text).strip().strip("'\""))
    if not m:
        raise ValueError(f"can't read the duration {text!r}: write 15min, 2h or 90s")
    unit = (m.group(2) or "min").lower()
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r} in {text!r}: use s, min, h or d")
    return float(m.group(1)) * _UNITS[unit]


def format_duration(seconds: float) -> str:
    """A human duration: 45 s, 12 min, 3.5 h, 50 h (hours up to 100, as deadlines are given), 5.2 days."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 100 * 3600:
        h = s / 3600
        return f"{h:.1f} h" if h < 10 else f"{h:.0f} h"
    return f"{s / 86400:.1f} days"


def format_clock(when: float, now: float | None = None) -> str:
    """A clock time in local time: "14:32" today, "Tue 09:10" within a week, else the date."""
    now = time.time() if now is None else now
    t = datetime.fromtimestamp(when)
    n = datetime.fromtimestamp(now)
    if t.date() == n.date():
        return t.strftime("%H:%M")
    if 0 < (t.date() - n.date()).days < 7:
        return t.strftime("%a %H:%M")
    return t.strftime("%Y-%m-%d %H:%M")
