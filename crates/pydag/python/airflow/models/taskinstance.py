"""The task instance of a running try."""

from airflow._updraft.context import TaskInstance

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
