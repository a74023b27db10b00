"""TaskFlow decorators."""

from airflow._updraft.dag import dag
from airflow._updraft.decorators import task
from airflow._updraft.taskgroup import task_group

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
