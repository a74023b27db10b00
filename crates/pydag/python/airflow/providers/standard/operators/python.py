"""PythonOperator and its branching variants."""

from airflow._updraft.context import get_current_context
from airflow._updraft.operators import BranchPythonOperator, PythonOperator, ShortCircuitOperator

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
