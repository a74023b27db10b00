"""Connections."""

from airflow._updraft.secrets import Connection

from airflow._updraft.unsupported import module_getattr as _module_getattr

__getattr__ = _module_getattr(__name__)
