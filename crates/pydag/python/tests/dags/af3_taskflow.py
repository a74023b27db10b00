"""An Airflow 3 style TaskFlow DAG."""
import pendulum

from airflow.sdk import Param, chain, cross_downstream, dag, task, task_group
from airflow.providers.standard.operators.empty import EmptyOperator


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Berlin"),
    catchup=False,
    params={"limit": Param(10, type="integer", minimum=1), "label": "x"},
    tags=["taskflow"],
)
def af3_taskflow():
    @task
    def numbers():
        return [1, 2, 3]

    @task(multiple_outputs=True)
    def stats(values):
        return {"total": sum(values), "count": len(values)}

    @task
    def double(x, factor=2):
        return x * factor

    @task
    def total(values):
        return sum(values)

    @task.branch
    def pick(count):
        return "big" if count > 2 else "small"

    @task_group(group_id="post")
    def post(value):
        @task
        def format_it(v):
            return "value=%s" % v

        @task
        def show(text):
            print(text)

        show(format_it(value))

    nums = numbers()
    st = stats(nums)
    doubled = double.partial(factor=3).expand(x=nums)
    literal = double.override(task_id="double_literal").expand(x=[10, 20])
    t = total(doubled)
    p = pick(st["count"])
    big = EmptyOperator(task_id="big")
    small = EmptyOperator(task_id="small")
    p >> [big, small]
    post(t)
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    c = EmptyOperator(task_id="c")
    d = EmptyOperator(task_id="d")
    chain(a, [b, c], d)
    e1 = EmptyOperator(task_id="e1")
    e2 = EmptyOperator(task_id="e2")
    cross_downstream([a, literal], [e1, e2])
    double(5)
    double(6)


af3_taskflow()
