"""airflow.utils.timezone: aware datetimes (naive ones are UTC)."""

import datetime as _dt

from .timeutil import UTC, aware, parse_datetime

utc = UTC


def utcnow():
    return _dt.datetime.now(UTC)


def datetime(*args, **kwargs):
    if "tzinfo" not in kwargs:
        kwargs["tzinfo"] = UTC
    return _dt.datetime(*args, **kwargs)


def make_aware(value, timezone=None):
    if value.tzinfo is not None:
        raise ValueError("make_aware expects a naive datetime, got %s" % value)
    return value.replace(tzinfo=timezone or UTC)


def make_naive(value, timezone=None):
    return aware(value).astimezone(timezone or UTC).replace(tzinfo=None)


def convert_to_utc(value):
    if value is None:
        return None
    return aware(value).astimezone(UTC)


def coerce_datetime(value, tz=None):
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz or UTC)
    return _dt.datetime(value.year, value.month, value.day, tzinfo=tz or UTC)


def parse(text, timezone=None):
    return parse_datetime(text)
