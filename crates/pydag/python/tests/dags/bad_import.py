from airflow import DAG
from airflow.operators.python import ExternalPythonOperator

dag = DAG("bad_import")
