"""Task and run states."""

from airflow._updraft.trigger_rule import DagRunState, State, TaskInstanceState

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
