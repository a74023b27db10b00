"""Python callbacks of DAGs and tasks: which are serialized, and what callback mode gives
them. Each callback prints what it saw, one line, for the tests to read."""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.python import PythonOperator
from airflow.sdk import dag, task


def show(label):
    def callback(context):
        ti = context.get("ti")
        print("%s: reason=%s exception=%s run_id=%s ds=%s dag=%s ti=%s params=%s dag_run=%s" % (
            label,
            context.get("reason"),
            context.get("exception", "<absent>"),
            context["run_id"],
            context["ds"],
            context["dag"].dag_id,
            ti.task_id if ti is not None else None,
            dict(context["params"]),
            context["dag_run"].run_id,
        ))
    callback.__name__ = label
    return callback


def broken(context):
    raise RuntimeError("the callback itself is broken")


def fail():
    raise ValueError("the data is bad")


with DAG(
    "classic_callbacks",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    params={"region": "north"},
    on_failure_callback=[broken, show("dag_failed")],
    default_args={"on_retry_callback": show("retrying"), "retry_delay": timedelta(0)},
):
    PythonOperator(task_id="fails", python_callable=fail, retries=1,
                   on_failure_callback=show("task_failed"))
    PythonOperator(task_id="quiet", python_callable=lambda: None, on_retry_callback=None)


@dag(schedule=None, start_date=datetime(2024, 1, 1), on_success_callback=show("dag_succeeded"))
def taskflow_callbacks():
    @task
    def hello():
        return 1

    hello()


taskflow_callbacks()
