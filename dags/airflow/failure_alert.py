"""The alerting recipe as an Airflow 2 DAG file, run by Updraft unchanged.

A data-quality check fails (the extract finds no rows). Its on_failure_callback, set for
every task in default_args, mails the on-call address with airflow.utils.email.send_email,
naming the task, the logical date and the error; the DAG's own on_failure_callback mails
once the run has failed, with the reason. Mail goes out through [smtp] in updraft.toml.
This run fails on purpose.
"""
from datetime import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator
from airflow.utils.email import send_email

ON_CALL = ["data-quality@example.com"]


def mail_task_failure(context):
    ti = context["task_instance"]
    send_email(
        to=ON_CALL,
        subject="[airflow] %s.%s failed for %s" % (ti.dag_id, ti.task_id, context["ds"]),
        html_content=(
            "<p>Task <b>%s</b> of DAG <b>%s</b> failed on try %s.</p>"
            "<p>Error: %s</p><p><a href=\"%s\">Log</a></p>"
        )
        % (ti.task_id, ti.dag_id, ti.try_number, context["exception"], ti.log_url),
    )


def mail_run_failure(context):
    dag_run = context["dag_run"]
    send_email(
        to=ON_CALL,
        subject="[airflow] run %s of %s failed" % (dag_run.run_id, dag_run.dag_id),
        html_content="<p>Reason: %s</p><p>%s</p>" % (context["reason"], context.get("exception")),
    )


def extract():
    rows = []  # today's export came back empty
    print("extracted %d rows" % len(rows))
    return rows


def check_row_count(ti, ds, **_):
    rows = ti.xcom_pull(task_ids="extract")
    if len(rows) < 1:
        raise ValueError(
            "data quality check failed: expected at least 1 row for %s, got %d" % (ds, len(rows))
        )


default_args = {
    "owner": "data-team",
    "retries": 0,
    "on_failure_callback": mail_task_failure,
}

dag = DAG(
    "airflow_failure_alert",
    default_args=default_args,
    description="A failing data-quality check that mails the on-call address",
    schedule_interval=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    on_failure_callback=mail_run_failure,
    tags=["example", "alerting"],
)

extract_rows = PythonOperator(task_id="extract", python_callable=extract, dag=dag)
check = PythonOperator(task_id="check_row_count", python_callable=check_row_count, dag=dag)
publish = BashOperator(task_id="publish", bash_command="echo publishing {{ ds }}", dag=dag)

extract_rows >> check >> publish
