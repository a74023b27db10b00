from airflow import DAG

with DAG("bad_syntax") as dag:
    x = (1,
    y = 2
