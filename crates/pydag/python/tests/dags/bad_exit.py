import sys
from airflow import DAG

sys.exit(3)
