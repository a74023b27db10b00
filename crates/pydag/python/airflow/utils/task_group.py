"""TaskGroup."""

from airflow._updraft.taskgroup import TaskGroup, task_group

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
