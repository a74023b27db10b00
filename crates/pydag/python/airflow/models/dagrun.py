"""The DAG run of a running try."""

from airflow._updraft.context import DagRun

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
