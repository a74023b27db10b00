"""A small stand-in for pendulum, enough for DAG files: `pendulum.datetime(2024, 1, 1,
tz="UTC")`, `now`, `today`, `yesterday`, `duration`, `timezone`, `parse`. Datetimes are
the standard library's, aware, with zoneinfo timezones."""

import datetime as _dt
import sys as _sys

try:
    from zoneinfo import ZoneInfo as _ZoneInfo
except ImportError:  # pragma: no cover - Python 3.8
    _ZoneInfo = None

UTC = _dt.timezone.utc
DateTime = _dt.datetime
Date = _dt.date
Time = _dt.time
Duration = _dt.timedelta


def timezone(name):
    if isinstance(name, _dt.tzinfo):
        return name
    if name in ("UTC", "utc", "Etc/UTC", "Z"):
        return UTC
    if _ZoneInfo is None:
        raise ValueError("timezone %r needs zoneinfo (Python 3.9+)" % name)
    return _ZoneInfo(name)


def local_timezone():
    return _dt.datetime.now().astimezone().tzinfo


def datetime(year, month, day, hour=0, minute=0, second=0, microsecond=0, tz=UTC, fold=1, **kwargs):
    if "tzinfo" in kwargs:
        tz = kwargs.pop("tzinfo")
    if kwargs:
        raise TypeError("pendulum.datetime() got unexpected arguments: %s" % ", ".join(kwargs))
    tzinfo = timezone(tz) if tz is not None else None
    return _dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=tzinfo)


def now(tz=None):
    return _dt.datetime.now(timezone(tz) if tz is not None else local_timezone())


def today(tz="local"):
    zone = local_timezone() if tz == "local" else timezone(tz)
    return _dt.datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)


def yesterday(tz="local"):
    return today(tz) - _dt.timedelta(days=1)


def tomorrow(tz="local"):
    return today(tz) + _dt.timedelta(days=1)


def duration(days=0, seconds=0, microseconds=0, milliseconds=0, minutes=0, hours=0, weeks=0, years=0, months=0):
    if years or months:
        raise ValueError("pendulum.duration(years=, months=) is not supported by Updraft's pendulum")
    return _dt.timedelta(days=days, seconds=seconds, microseconds=microseconds, milliseconds=milliseconds,
                         minutes=minutes, hours=hours, weeks=weeks)


def parse(text, tz=UTC, **kwargs):
    value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None and tz is not None:
        value = value.replace(tzinfo=timezone(tz))
    return value


def instance(value, tz=UTC):
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone(tz))
    return value


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        "pendulum.%s is not supported by Updraft's small pendulum module (it has datetime, "
        "now, today, yesterday, duration, timezone, parse)" % name
    )


del _sys
