"""Airflow's exceptions."""

from airflow._updraft.exceptions import *  # noqa: F401,F403
from airflow._updraft.exceptions import (  # noqa: F401
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
