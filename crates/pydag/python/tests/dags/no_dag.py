"""Mentions airflow and dag, but defines no DAG."""
import airflow  # noqa: F401

VALUE = 1
