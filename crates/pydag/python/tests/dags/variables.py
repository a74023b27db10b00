"""Variable.set, Variable.delete, update and setdefault inside running tasks."""
from datetime import datetime

from airflow.models import Variable
from airflow.sdk import DAG, task

with DAG("variables", start_date=datetime(2024, 1, 1), schedule=None):

    @task
    def write():
        Variable.set("plain", 42)
        Variable.set("as_json", {"a": [1, 2]}, serialize_json=True)
        seen = [Variable.get("plain"), Variable.get("as_json", deserialize_json=True)]
        deleted = Variable.delete("old")
        seen.append(Variable.get("old", default_var="gone"))
        Variable.update("plain", "43")
        seen.append(Variable.get("plain"))
        seen.append(Variable.setdefault("fresh", "first"))
        seen.append(Variable.setdefault("fresh", "second"))
        return seen + [deleted, Variable.delete("never_there")]

    @task
    def through_the_context(**context):
        Variable.set("shown", "now")
        return context["var"]["value"].shown

    @task
    def update_missing():
        Variable.update("missing", "x")

    write()
    through_the_context()
    update_missing()


def describe(conn):
    return [conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema, conn.extra_dejson]


with DAG("secrets_lookup", start_date=datetime(2024, 1, 1), schedule=None):

    @task
    def connections():
        from airflow.hooks.base import BaseHook
        from airflow.models import Connection

        found = {name: describe(BaseHook.get_connection(name)) for name in ("spec", "uri", "as_json", "blank")}
        try:
            Connection.get("missing")
        except Exception as exc:
            found["missing"] = "%s: %s" % (type(exc).__name__, exc)
        return found

    @task
    def variables():
        return [Variable.get("from_env"), Variable.get("empty_env"), Variable.get("stored"), Variable.get("absent", default_var=None)]

    connections()
    variables()
