from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.empty import EmptyOperator
from airflow.timetables.interval import CronDataIntervalTimetable

for dag_id, schedule in [
    ("every_hour", timedelta(hours=1)),
    ("every_15m", timedelta(minutes=15)),
    ("every_day", timedelta(days=1)),
    ("every_6h", timedelta(hours=6)),
    ("preset", "@weekly"),
]:
    with DAG(dag_id, start_date=datetime(2024, 1, 1), schedule=schedule, dagrun_timeout=timedelta(hours=2)):
        EmptyOperator(task_id="t")

with DAG("legacy", start_date=datetime(2024, 1, 1), schedule_interval="@daily", concurrency=4, max_active_runs=1):
    EmptyOperator(task_id="t")

with DAG("intervals", start_date=datetime(2024, 1, 1), timetable=CronDataIntervalTimetable("0 3 * * *", timezone="UTC")):
    EmptyOperator(task_id="t")

with DAG("no_schedule", start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="t")
