"""EmailOperator (Airflow 3: airflow.providers.smtp.operators.smtp)."""

from airflow._updraft.operators import EmailOperator

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
