# airflow dag that never finishes importing
while True:
    pass
