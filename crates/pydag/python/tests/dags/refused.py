"""DAGs Updraft refuses, one per `case` variable, each with the reason named."""
from datetime import datetime

from airflow.models import Variable
from airflow.operators.email import EmailOperator
from airflow.operators.empty import EmptyOperator
from airflow.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

case = Variable.get("case")


def notify(context):
    pass


with DAG("refused", start_date=datetime(2024, 1, 1), schedule=None):
    EmptyOperator(task_id="only")
    if case == "trigger_args":
        TriggerDagRunOperator(task_id="t", trigger_dag_id="x", execution_date="{{ ds }}", reset_dag_run=True)  # here
    elif case == "trigger_callback":
        TriggerDagRunOperator(task_id="t", trigger_dag_id="x", on_failure_callback=notify)  # here
    elif case == "trigger_mapped":
        TriggerDagRunOperator.partial(task_id="t").expand(trigger_dag_id=["a", "b"])  # here
    elif case == "trigger_conf":
        TriggerDagRunOperator(task_id="t", trigger_dag_id="x", conf={"when": datetime(2024, 1, 1)})  # here
    elif case == "trigger_state":
        TriggerDagRunOperator(task_id="t", trigger_dag_id="x", wait_for_completion=True, allowed_states=["done"])  # here
    elif case == "trigger_both_dates":
        TriggerDagRunOperator(task_id="t", trigger_dag_id="x", logical_date="{{ ts }}", execution_date="{{ ts }}")  # here
    elif case == "email_conn":
        EmailOperator(task_id="m", to="a@example.com", subject="s", html_content="b", conn_id="smtp_gmail")  # here
    elif case == "email_subject":
        EmailOperator(task_id="m", to="a@example.com", html_content="b")  # here
    elif case == "variable_set":
        Variable.set("written_at_parse_time", "x")  # here
    elif case == "variable_delete":
        Variable.delete("old")  # here

if case == "empty":
    with DAG("refused_empty", start_date=datetime(2024, 1, 1), schedule=None):  # here
        pass
