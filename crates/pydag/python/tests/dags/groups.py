from datetime import datetime

from airflow.sdk import DAG, TaskGroup
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.bash import BashOperator

with DAG("groups", start_date=datetime(2024, 1, 1), schedule=None,
         default_args={"retries": 1, "pool": "etl"}) as dag:
    start = EmptyOperator(task_id="start")
    with TaskGroup("outer", default_args={"retries": 3}) as outer:
        a = BashOperator(task_id="a", bash_command="echo a", env={"X": "1"}, append_env=True)
        with TaskGroup("flat", prefix_group_id=False) as flat:
            b = BashOperator(task_id="b", bash_command="echo b", retries=5)
        with TaskGroup("inner") as inner:
            start_in = EmptyOperator(task_id="start")
            c = BashOperator(task_id="c", bash_command="exit 1", env={"ONLY": "this"})
            start_in >> c
        a >> flat >> inner
    start >> outer
    start >> start_in
