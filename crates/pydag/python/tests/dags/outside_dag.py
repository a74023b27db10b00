from airflow.operators.empty import EmptyOperator

EmptyOperator(task_id="lonely")
