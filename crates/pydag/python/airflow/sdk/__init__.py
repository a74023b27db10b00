"""Airflow 3's authoring interface (`airflow.sdk`)."""

from airflow._updraft.baseoperator import BaseOperator
from airflow._updraft.context import get_current_context
from airflow._updraft.dag import DAG, dag
from airflow._updraft.decorators import task
from airflow._updraft.deps import EdgeModifier, Label, chain, chain_linear, cross_downstream
from airflow._updraft.params import Param, ParamsDict
from airflow._updraft.secrets import BaseHook, Connection, Variable
from airflow._updraft.sensors import BaseSensorOperator, PokeReturnValue
from airflow._updraft.taskgroup import TaskGroup, task_group
from airflow._updraft.trigger_rule import TriggerRule
from airflow._updraft.xcomarg import XComArg

Context = dict

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
