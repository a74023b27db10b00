"""The task context type."""

from airflow._updraft.context import get_current_context

Context = dict

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
