"""Airflow 2's DAG module."""

from airflow._updraft.dag import DAG, dag

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
