"""Task groups in the Airflow 3 style: two groups side by side, a group-to-group edge into
the analytics group, and a nested group."""
from airflow.sdk import DAG, TaskGroup
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(
    dag_id="airflow_task_groups",
    description="TaskGroups with group-to-group edges (Airflow 3 imports)",
    schedule=None,
    tags=["example", "groups", "airflow3"],
):
    start = EmptyOperator(task_id="start")
    with TaskGroup("customers", tooltip="Customer data") as customers:
        extract = BashOperator(task_id="extract", bash_command="echo extracting customers")
        transform = BashOperator(task_id="transform", bash_command="echo transforming customers")
        extract >> transform
    with TaskGroup("orders", tooltip="Order data") as orders:
        extract = BashOperator(task_id="extract", bash_command="echo extracting orders")
        transform = BashOperator(task_id="transform", bash_command="echo transforming orders")
        extract >> transform
    with TaskGroup("analytics") as analytics:
        join = BashOperator(task_id="join", bash_command="echo joining")
        with TaskGroup("reports"):
            daily = BashOperator(task_id="daily", bash_command="echo daily report")
        join >> daily
    end = EmptyOperator(task_id="end")

    start >> [customers, orders] >> analytics >> end
