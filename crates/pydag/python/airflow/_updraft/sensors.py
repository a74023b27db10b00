"""Sensors: BaseSensorOperator's poke loop and the standard sensors.

FileSensor, DateTimeSensor, TimeSensor (UTC DAGs) and plain ExternalTaskSensor become
Updraft's native sensors when serialized; every other sensor runs here in Python, poking in
one process (Airflow's `poke` mode) until done or timed out.
"""

import datetime
import glob
import os
import time

from .baseoperator import BaseOperator
from .exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException
from .operators import SkipMixin, context_kwargs
from .timeutil import seconds, utcnow, parse_datetime


class PokeReturnValue:
    """What a poke may return: whether it is done, and the XCom to push when it is."""

    def __init__(self, is_done, xcom_value=None):
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self):
        return bool(self.is_done)


class BaseSensorOperator(BaseOperator, SkipMixin):
    is_sensor = True
    ui_color = "#e6f1f2"
    valid_modes = ("poke", "reschedule")
    _updraft_arguments = {
        "poke_interval": 60,
        "timeout": 7 * 24 * 60 * 60,
        "soft_fail": False,
        "mode": "poke",
        "exponential_backoff": False,
        "max_wait": None,
        "silent_fail": False,
        "never_fail": False,
        "deferrable": False,
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.mode not in self.valid_modes:
            raise AirflowException(
                "The mode must be one of %s, '%s.%s' has '%s'"
                % (self.valid_modes, self.dag.dag_id if self.dag else None, self.task_id, self.mode)
            )
        self.poke_interval = seconds(self.poke_interval)
        self.timeout = seconds(self.timeout)
        self.max_wait = seconds(self.max_wait)

    def poke(self, context):
        raise NotImplementedError("%s must implement poke(context)" % type(self).__name__)

    def _next_wait(self, tries):
        if not self.exponential_backoff:
            return self.poke_interval
        wait = self.poke_interval * (2 ** tries)
        if self.max_wait is not None:
            wait = min(wait, self.max_wait)
        return wait

    def execute(self, context):
        started = time.monotonic()
        tries = 0
        while True:
            try:
                result = self.poke(context)
            except (AirflowSensorTimeout, AirflowSkipException):
                raise
            except Exception:
                if self.silent_fail:
                    self.log.exception("Sensor poke failed; continuing (silent_fail)")
                    result = False
                else:
                    raise
            if isinstance(result, PokeReturnValue):
                if result.is_done:
                    return result.xcom_value
            elif result:
                return None
            elapsed = time.monotonic() - started
            if elapsed >= self.timeout:
                message = "Sensor has timed out; run duration of %s seconds exceeds the specified timeout of %s." % (
                    round(elapsed, 1),
                    self.timeout,
                )
                if self.soft_fail or self.never_fail:
                    raise AirflowSkipException(message)
                raise AirflowSensorTimeout(message)
            wait = min(self._next_wait(tries), max(self.timeout - elapsed, 0.0))
            tries += 1
            self.log.info("Poking again in %s seconds", round(wait, 1))
            time.sleep(wait)


class FileSensor(BaseSensorOperator):
    template_fields = ("filepath",)
    ui_color = "#91818a"
    _updraft_arguments = {"fs_conn_id": "fs_default", "recursive": False, "start_from_trigger": False, "trigger_kwargs": None}

    def __init__(self, *, filepath, **kwargs):
        super().__init__(**kwargs)
        self.filepath = filepath

    def _full_path(self):
        base = ""
        if self.fs_conn_id and self.fs_conn_id != "fs_default":
            from .secrets import BaseHook

            conn = BaseHook.get_connection(self.fs_conn_id)
            base = conn.extra_dejson.get("path", "")
        return os.path.join(base, self.filepath)

    def poke(self, context):
        path = self._full_path()
        self.log.info("Poking for file %s", path)
        for found in glob.glob(path, recursive=self.recursive):
            if os.path.isfile(found):
                return True
            for _root, _dirs, files in os.walk(found):
                if files:
                    return True
        return False


class PythonSensor(BaseSensorOperator):
    template_fields = ("templates_dict", "op_args", "op_kwargs")

    def __init__(self, *, python_callable, op_args=None, op_kwargs=None, templates_dict=None, **kwargs):
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args = op_args or []
        self.op_kwargs = op_kwargs or {}
        self.templates_dict = templates_dict

    def poke(self, context):
        context.update(self.op_kwargs)
        context["templates_dict"] = self.templates_dict
        kwargs = context_kwargs(self.python_callable, list(self.op_args), context)
        self.log.info("Poking callable: %s", getattr(self.python_callable, "__name__", self.python_callable))
        return self.python_callable(*self.op_args, **kwargs)


class DateTimeSensor(BaseSensorOperator):
    template_fields = ("target_time",)

    def __init__(self, *, target_time, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_time, datetime.datetime):
            if target_time.tzinfo is None:
                target_time = target_time.replace(tzinfo=datetime.timezone.utc)
            self.target_time = target_time.isoformat()
        elif isinstance(target_time, str):
            self.target_time = target_time
        else:
            raise TypeError(
                "Expected str or datetime.datetime type for target_time. Got %s" % type(target_time)
            )

    def poke(self, context):
        self.log.info("Checking if the time (%s) has come", self.target_time)
        return utcnow() > parse_datetime(self.target_time)


class DateTimeSensorAsync(DateTimeSensor):
    pass


class TimeSensor(BaseSensorOperator):
    _updraft_arguments = {"start_from_trigger": False, "trigger_kwargs": None, "end_from_trigger": False}

    def __init__(self, *, target_time, **kwargs):
        super().__init__(**kwargs)
        self.target_time = target_time

    def poke(self, context):
        tz = _dag_timezone(self.dag)
        now = datetime.datetime.now(tz)
        self.log.info("Checking if the time (%s) has come", self.target_time)
        return now.time().replace(tzinfo=None) > self.target_time


class TimeSensorAsync(TimeSensor):
    pass


class TimeDeltaSensor(BaseSensorOperator):
    def __init__(self, *, delta, **kwargs):
        super().__init__(**kwargs)
        self.delta = delta

    def poke(self, context):
        base = context.get("data_interval_end") or context.get("logical_date") or utcnow()
        target = base + self.delta
        self.log.info("Checking if the time (%s) has come", target)
        return utcnow() > target


class TimeDeltaSensorAsync(TimeDeltaSensor):
    pass


class WaitSensor(BaseSensorOperator):
    def __init__(self, *, time_to_wait, **kwargs):
        super().__init__(**kwargs)
        self.time_to_wait = datetime.timedelta(seconds=seconds(time_to_wait))

    def execute(self, context):
        time.sleep(self.time_to_wait.total_seconds())


class ExternalTaskSensor(BaseSensorOperator):
    """Waits for a task (or a whole run) of another DAG: Updraft's native `external_task`
    sensor. It cannot run in Python, which has no access to other runs' states."""

    template_fields = ("external_dag_id", "external_task_id", "external_task_ids", "external_task_group_id")
    ui_color = "#4db7db"
    _updraft_arguments = {
        "external_task_id": None,
        "external_task_ids": None,
        "external_task_group_id": None,
        "allowed_states": None,
        "skipped_states": None,
        "failed_states": None,
        "execution_delta": None,
        "execution_date_fn": None,
        "check_existence": False,
        "poll_interval": 2.0,
    }

    def __init__(self, *, external_dag_id, **kwargs):
        super().__init__(**kwargs)
        self.external_dag_id = external_dag_id

    def poke(self, context):
        raise AirflowException("ExternalTaskSensor runs as Updraft's native external_task sensor only")


class ExternalTaskMarker(BaseOperator):
    template_fields = ("external_dag_id", "external_task_id", "logical_date")
    _updraft_arguments = {"logical_date": "{{ logical_date.isoformat() }}", "execution_date": None, "recursion_depth": 10}

    def __init__(self, *, external_dag_id, external_task_id, **kwargs):
        super().__init__(**kwargs)
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id

    def execute(self, context):
        pass


def _dag_timezone(dag):
    start = getattr(dag, "start_date", None) if dag is not None else None
    if isinstance(start, datetime.datetime) and start.tzinfo is not None:
        return start.tzinfo
    return datetime.timezone.utc
