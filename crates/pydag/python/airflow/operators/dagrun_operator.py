"""Airflow 1's name for airflow.operators.trigger_dagrun."""

from airflow._updraft.operators import TriggerDagRunOperator

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
