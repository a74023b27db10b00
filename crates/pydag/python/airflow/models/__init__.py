"""Airflow's models: the DAG, operators, params, variables, connections."""

from airflow._updraft.baseoperator import BaseOperator
from airflow._updraft.context import DagRun, TaskInstance
from airflow._updraft.dag import DAG
from airflow._updraft.params import Param
from airflow._updraft.secrets import Connection, Variable
from airflow._updraft.xcomarg import XComArg

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
