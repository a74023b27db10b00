"""Airflow 2's BaseOperator module."""

from airflow._updraft.baseoperator import BaseOperator
from airflow._updraft.deps import chain, chain_linear, cross_downstream

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
