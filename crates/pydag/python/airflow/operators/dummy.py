"""Airflow 2's DummyOperator (an EmptyOperator)."""

from airflow._updraft.operators import DummyOperator, EmptyOperator

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
