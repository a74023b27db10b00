"""Branching as an Airflow 2 DAG file: a BranchPythonOperator picks the large or the small
path from the run's conf, and a join with `none_failed_min_one_success` runs after either."""
from datetime import datetime

from airflow import DAG
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import BranchPythonOperator, PythonOperator


def choose(**context):
    rows = int(context["dag_run"].conf.get("rows", 100))
    return "process_large" if rows > 1000 else "process_small"


def process(kind):
    print("processing the %s batch" % kind)
    return kind


dag = DAG(
    "airflow_branching",
    description="BranchPythonOperator and a none_failed_min_one_success join",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    tags=["example", "branching", "airflow2"],
)

check = BranchPythonOperator(task_id="check_size", python_callable=choose, dag=dag)
large = PythonOperator(task_id="process_large", python_callable=process, op_args=["large"], dag=dag)
small = PythonOperator(task_id="process_small", python_callable=process, op_kwargs={"kind": "small"}, dag=dag)
join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success", dag=dag)

check >> [large, small] >> join
