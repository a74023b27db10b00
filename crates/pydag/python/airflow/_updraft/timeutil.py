"""Dates and durations: seconds of a duration, RFC 3339 text, parsing the context's
timestamps, and Airflow's date macros."""

import datetime

UTC = datetime.timezone.utc


def seconds(value):
    """A duration (timedelta or number of seconds) as a float of seconds."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise TypeError("a duration must be a timedelta or a number of seconds, got %r" % value)
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError("a duration must be a timedelta or a number of seconds, got %r" % (value,))


def number(value):
    """Seconds as JSON prefers them: an int when whole."""
    s = seconds(value)
    if s is None:
        return None
    return int(s) if float(s).is_integer() else s


def utcnow():
    return datetime.datetime.now(UTC)


def aware(dt):
    """A datetime with a timezone: naive ones are UTC, as in Airflow."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def rfc3339(value):
    """A date or datetime as dag-format writes it."""
    if isinstance(value, datetime.datetime):
        return aware(value).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError("expected a date or datetime, got %r" % (value,))


def parse_datetime(text):
    if text is None:
        return None
    if isinstance(text, datetime.datetime):
        return aware(text)
    text = text.strip().replace("Z", "+00:00")
    if len(text) == 10:
        return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)
    return aware(datetime.datetime.fromisoformat(text))


def tz_name(tzinfo):
    """The IANA name of a timezone, or None when it has none (fixed offsets)."""
    if tzinfo is None or tzinfo is UTC:
        return "UTC"
    key = getattr(tzinfo, "key", None) or getattr(tzinfo, "zone", None) or getattr(tzinfo, "name", None)
    if isinstance(key, str) and ("/" in key or key in ("UTC", "GMT")):
        return key
    if datetime.datetime(2000, 1, 1, tzinfo=tzinfo).utcoffset() == datetime.timedelta(0) and str(tzinfo) in ("UTC", "UTC+00:00"):
        return "UTC"
    return None


def ds_add(ds, days):
    """`ds` (YYYY-MM-DD) moved by `days` days."""
    if not days:
        return str(ds)
    day = datetime.datetime.strptime(str(ds), "%Y-%m-%d") + datetime.timedelta(days=days)
    return day.strftime("%Y-%m-%d")


def ds_format(ds, input_format, output_format):
    return datetime.datetime.strptime(str(ds), input_format).strftime(output_format)


def days_ago(n, hour=0, minute=0, second=0, microsecond=0):
    today = utcnow().replace(hour=hour, minute=minute, second=second, microsecond=microsecond)
    return today - datetime.timedelta(days=n)
