"""Timezone helpers."""

from airflow._updraft.timezone_helpers import coerce_datetime, convert_to_utc, datetime, make_aware, make_naive, parse, utc, utcnow

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
