"""Tasks generated from a Variable, as Airflow users write it: the DAG file reads the
`data_sources` Variable when it is parsed and makes one task per entry."""
import json
from datetime import datetime

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator

DEFAULT_SOURCES = [{"name": "crm", "table": "customers"}, {"name": "erp", "table": "orders"}]
sources = Variable.get("data_sources", default_var=DEFAULT_SOURCES, deserialize_json=True)


def summarize(ti, **_):
    # A BashOperator pushes its last output line as text, as in Airflow.
    lines = ti.xcom_pull(task_ids=["process_%s" % s["name"] for s in sources])
    names = [json.loads(line)["name"] for line in lines]
    print("processed", ", ".join(names))
    return len(names)


with DAG(
    dag_id="airflow_data_sources",
    description="One task per entry of the data_sources Variable, made at parse time",
    start_date=datetime(2024, 1, 1),
    schedule=None,
    tags=["example", "variables", "airflow2"],
) as dag:
    summary = PythonOperator(task_id="summary", python_callable=summarize)
    for source in sources:
        BashOperator(
            task_id="process_%s" % source["name"],
            bash_command="echo '{\"name\": \"%s\", \"table\": \"%s\"}'" % (source["name"], source["table"]),
        ) >> summary
