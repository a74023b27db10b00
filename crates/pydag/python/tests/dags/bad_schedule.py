from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.empty import EmptyOperator

with DAG("bad_schedule", start_date=datetime(2024, 1, 1), schedule=timedelta(minutes=7)):
    EmptyOperator(task_id="a")
