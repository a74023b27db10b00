"""An Airflow 2 style ETL DAG."""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator
from airflow.operators.dummy import DummyOperator
from airflow.operators.python import BranchPythonOperator, PythonOperator
from airflow.sensors.filesystem import FileSensor
from airflow.utils.email import send_email
from airflow.utils.task_group import TaskGroup


def notify_failure(context):
    send_email(
        to=["oncall@example.com"],
        subject="Task %s failed" % context["ti"].task_id,
        html_content="<p>%s</p>" % context["exception"],
    )


default_args = {
    "owner": "data-team",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "email": ["alerts@example.com"],
    "email_on_failure": True,
}

dag = DAG(
    "af2_etl",
    default_args=default_args,
    description="Airflow 2 style",
    schedule_interval="0 2 * * *",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["etl"],
)


def extract(**kwargs):
    ti = kwargs["ti"]
    ti.xcom_push(key="row_count", value=1500)
    return {"rows": [1, 2, 3], "ds": kwargs["ds"]}


def choose(**context):
    count = context["ti"].xcom_pull(task_ids="extract", key="row_count")
    return "process_large" if count > 1000 else "process_small"


wait = FileSensor(task_id="wait_for_file", filepath="/data/{{ ds }}.csv", poke_interval=30, timeout=600, dag=dag)
extract_task = PythonOperator(
    task_id="extract",
    python_callable=extract,
    provide_context=True,
    on_failure_callback=notify_failure,
    dag=dag,
)


def explode():
    raise ValueError("the source is broken")


flaky = PythonOperator(task_id="flaky", python_callable=explode, retries=0, on_failure_callback=notify_failure, dag=dag)
branch = BranchPythonOperator(task_id="branch", python_callable=choose, dag=dag)
large = BashOperator(task_id="process_large", bash_command="echo large {{ ds }}", dag=dag)
small = BashOperator(task_id="process_small", bash_command="echo small", dag=dag)
join = DummyOperator(task_id="join", trigger_rule="none_failed_min_one_success", dag=dag)

with TaskGroup("sources", tooltip="Per source", dag=dag) as sources:
    for src in Variable.get("data_sources", deserialize_json=True, default_var=["a", "b"]):
        BashOperator(task_id="load_%s" % src, bash_command="echo loading %s" % src)

with TaskGroup("report", dag=dag) as report:
    r1 = BashOperator(task_id="build", bash_command="echo build")
    r2 = BashOperator(task_id="publish", bash_command="echo publish")
    r1 >> r2

wait >> extract_task >> branch >> [large, small] >> join
join >> sources >> report
