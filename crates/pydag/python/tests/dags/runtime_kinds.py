"""Operators that run in Python: sensors, short-circuit, @task.bash, get_current_context."""
from datetime import datetime

from airflow.sdk import DAG, PokeReturnValue, get_current_context, task
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from datetime import timedelta


def never():
    return False


with DAG("runtime_kinds", start_date=datetime(2024, 1, 1), schedule=None):
    PythonSensor(task_id="never_ready", python_callable=never, poke_interval=0.1, timeout=0.3)
    PythonSensor(task_id="soft", python_callable=never, poke_interval=0.1, timeout=0.2, soft_fail=True)
    TimeDeltaSensor(task_id="past", delta=timedelta(seconds=-1))

    @task.sensor(poke_interval=0.1, timeout=5)
    def ready_soon(ti=None):
        return PokeReturnValue(is_done=True, xcom_value={"found": ti.task_id})

    @task
    def gate(flag):
        return flag

    check = ShortCircuitOperator(task_id="check", python_callable=lambda flag: flag, op_kwargs={"flag": "{{ params.go }}"})

    @task.bash(env={"GREETING": "hello"}, append_env=True)
    def greet(name):
        return 'echo "$GREETING %s"; echo done-%s' % (name, name)

    @task
    def where():
        ctx = get_current_context()
        return [ctx["ti"].task_id, ctx["ds"], ctx["dag"].dag_id, ctx["params"].get("go")]

    ready_soon() >> check >> [greet("bob"), where()]
