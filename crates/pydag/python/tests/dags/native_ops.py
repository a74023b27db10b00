"""TriggerDagRunOperator and EmailOperator under every import name: native `trigger_dag` and
`email` tasks where their arguments fit those kinds, Python (`airflow`) where they do not."""
import os
from datetime import datetime

from airflow.operators.dagrun_operator import TriggerDagRunOperator as Airflow1Trigger
from airflow.operators.email import EmailOperator as LegacyEmail
from airflow.operators.email_operator import EmailOperator as Airflow1Email
from airflow.operators.trigger_dagrun import TriggerDagRunOperator as LegacyTrigger
from airflow.providers.smtp.operators.smtp import EmailOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task
from airflow.utils.state import DagRunState

HERE = os.path.dirname(os.path.abspath(__file__))


class MyTrigger(TriggerDagRunOperator):
    """A user's subclass: never native, and Python cannot make DAG runs."""


class MyEmail(EmailOperator):
    """A user's subclass: sent from Python, where another SMTP connection is refused."""


def notify(context):
    print("notified about %s" % context["ti"].task_id)


with DAG("native_ops", start_date=datetime(2024, 1, 1), schedule=None, default_args={"retries": 1}):

    @task
    def pick_files():
        return ["a.csv", "b.csv"]

    @task
    def recipients():
        return ["x@example.com", "y@example.com"]

    files = pick_files()
    TriggerDagRunOperator(task_id="trigger", trigger_dag_id="target", conf={"day": "{{ ds }}", "files": files, "n": 3})
    LegacyTrigger(
        task_id="trigger_wait",
        trigger_dag_id="target_{{ params.env }}",
        wait_for_completion=True,
        poke_interval=10,
        allowed_states=[DagRunState.SUCCESS, "failed"],
        failed_states=[],
        deferrable=True,
    )
    Airflow1Trigger(task_id="trigger_af1", trigger_dag_id="target", conf={}, trigger_run_id=None, reset_dag_run=False)
    MyTrigger(task_id="subclassed", trigger_dag_id="target")

    EmailOperator(
        task_id="mail",
        to=["a@example.com", "b@example.com"],
        cc="c@example.com",
        subject="Report {{ ds }}",
        html_content="report.html",
        files=[],
        mime_subtype="mixed",
        conn_id="smtp_default",
    )
    LegacyEmail(
        task_id="mail_bcc",
        to="a@example.com",
        bcc=["hidden@example.com"],
        subject="Files for {{ ds }}",
        html_content="<p>{{ ds }}</p>",
        files=[os.path.join(HERE, "attachment.txt")],
    )
    Airflow1Email(task_id="mail_callback", to="a@example.com", subject="s", html_content="<p>x</p>", on_success_callback=notify)
    EmailOperator(task_id="mail_xcom", to=recipients(), subject="Hello", html_content="<b>hi</b>")
    MyEmail(task_id="mail_subclass", to="a@example.com", subject="s", html_content="b", conn_id="smtp_other")
