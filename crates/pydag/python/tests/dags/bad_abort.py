import os
from airflow import DAG

os.abort()
