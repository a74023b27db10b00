"""Airflow 2's dependency helpers."""

from airflow._updraft.deps import chain, cross_downstream

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
