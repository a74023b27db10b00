"""An Airflow 3 TaskFlow DAG: tasks passing values by their return, multiple outputs,
mapping over an upstream's list, and a branch."""
from airflow.sdk import Param, dag, task


@dag(
    schedule=None,
    tags=["example", "taskflow", "airflow3"],
    params={"threshold": Param(10, type="integer", minimum=0)},
)
def airflow_taskflow():
    @task
    def extract():
        return [3, 7, 12]

    @task(multiple_outputs=True)
    def stats(values):
        return {"count": len(values), "total": sum(values)}

    @task
    def double(value):
        return value * 2

    @task.branch
    def big_or_small(total, params=None):
        return "report_big" if total > params["threshold"] else "report_small"

    @task
    def report_big(doubled):
        print("big batch, doubled:", doubled)

    @task
    def report_small():
        print("small batch")

    values = extract()
    summary = stats(values)
    doubled = double.expand(value=values)
    choice = big_or_small(summary["total"])
    choice >> [report_big(doubled), report_small()]


airflow_taskflow()
