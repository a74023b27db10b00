"""A user's own operator with template fields, in an Airflow 3 style DAG."""
from datetime import datetime

from airflow.sdk import DAG, BaseOperator
from airflow.exceptions import AirflowSkipException


class QueryOperator(BaseOperator):
    template_fields = ("sql", "targets")

    def __init__(self, *, sql, targets, skip=False, **kwargs):
        super().__init__(**kwargs)
        self.sql = sql
        self.targets = targets
        self.skip = skip

    def execute(self, context):
        if self.skip:
            raise AirflowSkipException("nothing to do")
        print("running %s for %s" % (self.sql, self.targets))
        return {"sql": self.sql, "targets": self.targets, "ds": context["ds"]}


class Opaque:
    pass


def make_object():
    return Opaque()


def boom():
    raise RuntimeError("kaboom")


with DAG("custom_op", start_date=datetime(2024, 1, 1), schedule=None):
    QueryOperator(task_id="query", sql="select * from t where day = '{{ ds }}'", targets=["a", "{{ ds_nodash }}", 3])
    QueryOperator(task_id="skipper", sql="select 1", targets=[], skip=True)
    from airflow.providers.standard.operators.python import PythonOperator

    PythonOperator(task_id="returns_object", python_callable=make_object)
    PythonOperator(task_id="raises", python_callable=boom)
