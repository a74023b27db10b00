"""The daily sales ETL as an Airflow 2 DAG file, run by Updraft unchanged.

Wait for the day's file (FileSensor), extract and transform it (PythonOperator, passing
values by XCom), then report with a BashOperator that renders {{ ds }}.
"""
import csv
import json
import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator
from airflow.sensors.filesystem import FileSensor

WORKDIR = "/tmp/updraft_airflow_sales"

default_args = {
    "owner": "data-team",
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "execution_timeout": timedelta(minutes=10),
}


def extract_sales(ds, **context):
    path = os.path.join(WORKDIR, "incoming", "sales_%s.csv" % ds)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    context["ti"].xcom_push(key="row_count", value=len(rows))
    return rows


def transform_sales(ti, **_):
    rows = ti.xcom_pull(task_ids="extract")
    totals = {}
    for row in rows:
        totals[row["region"]] = totals.get(row["region"], 0) + float(row["amount"])
    return {"regions": totals, "orders": ti.xcom_pull(task_ids="extract", key="row_count")}


with DAG(
    dag_id="airflow_sales_etl",
    description="Daily sales ETL (an Airflow 2 DAG file)",
    schedule_interval="0 2 * * *",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args=default_args,
    tags=["sales", "etl", "airflow2", "example"],
) as dag:
    generate = BashOperator(
        task_id="generate_sample",
        bash_command=(
            "mkdir -p %s/incoming && printf 'region,amount\\nnorth,10\\nsouth,20\\nnorth,5\\n'"
            " > %s/incoming/sales_{{ ds }}.csv" % (WORKDIR, WORKDIR)
        ),
    )
    wait_for_file = FileSensor(
        task_id="wait_for_sales_file",
        filepath=WORKDIR + "/incoming/sales_{{ ds }}.csv",
        poke_interval=5,
        timeout=600,
    )
    extract = PythonOperator(
        task_id="extract",
        python_callable=extract_sales,
        provide_context=True,
    )
    transform = PythonOperator(task_id="transform", python_callable=transform_sales)
    report = BashOperator(
        task_id="report",
        bash_command="echo 'sales for {{ ds }}: {{ ti.xcom_pull(task_ids=\"transform\") | tojson }}'",
    )

    generate >> wait_for_file >> extract >> transform >> report
