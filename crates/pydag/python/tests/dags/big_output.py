from datetime import datetime

from airflow import DAG
from airflow.operators.empty import EmptyOperator

print("x" * (5 * 1024 * 1024))
with DAG("big_output", start_date=datetime(2024, 1, 1), schedule="@hourly"):
    EmptyOperator(task_id="only")
