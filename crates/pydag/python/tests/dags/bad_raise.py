from airflow import DAG


def helper():
    return {}["missing"]


with DAG("bad_raise"):
    helper()
