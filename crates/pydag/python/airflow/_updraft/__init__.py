"""Updraft's internals behind the `airflow` compatibility package.

The public `airflow.*` modules re-export what lives here: the DAG model (DAG, operators,
task groups, XCom arguments), the serializer that turns a DAG into Updraft's JSON document,
and the runtime that executes one task try.
"""
