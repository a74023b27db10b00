"""Date helpers of Airflow 2."""

from airflow._updraft.timeutil import days_ago

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
