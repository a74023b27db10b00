"""Updraft's Airflow compatibility package: Airflow 2 and 3 DAG files import from here."""

__version__ = "3.0.0"

from airflow._updraft.unsupported import install_finder as _install_finder

_install_finder()

from airflow._updraft.dag import DAG  # noqa: E402
from airflow._updraft.xcomarg import XComArg  # noqa: E402
from airflow._updraft.exceptions import AirflowException  # noqa: E402

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
