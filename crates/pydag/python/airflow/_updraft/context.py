"""The task context of a running try: the task instance (`ti`) with XCom push and pull,
the DAG run, variable and connection accessors, and get_current_context()."""

import datetime
import json
import os

from . import state
from .exceptions import AirflowException
from .params import ParamsDict, Param
from .secrets import Variable, get_connection
from .timeutil import parse_datetime

RETURN_KEY = "return_value"


class _NotSet:
    """`map_indexes` left out, which Airflow tells apart from `map_indexes=None`."""

    def __repr__(self):
        return "NOTSET"


NOTSET = _NotSet()


class NotSerializable(TypeError):
    """A value meant for XCom has no JSON form."""


def to_json(value, what):
    """JSON text of an XCom value. Dates and datetimes are written as ISO 8601 strings."""

    def default(obj):
        if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
            return obj.isoformat()
        raise TypeError
    try:
        return json.dumps(value, default=default)
    except (TypeError, ValueError):
        raise NotSerializable(
            "%s is a %s, which is not JSON-serializable" % (what, type(value).__name__)
        ) from None


class XComStore:
    """The run's XComs as given in the spec, plus what this try pushes."""

    def __init__(self, xcoms, task_id, map_index):
        self.items = list(xcoms or [])
        self.task_id = task_id
        self.map_index = map_index

    def push(self, key, value):
        text = to_json(value, "the XCom %r of task %s" % (key, self.task_id))
        path = os.environ.get("UPDRAFT_XCOM_FILE")
        if not path:
            raise AirflowException("UPDRAFT_XCOM_FILE is not set: XComs cannot be pushed")
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "value": json.loads(text)}) + "\n")
        self.items = [
            x for x in self.items
            if not (x["task_id"] == self.task_id and x["map_index"] == self.map_index and x["key"] == key)
        ]
        self.items.append({"task_id": self.task_id, "map_index": self.map_index, "key": key, "value": json.loads(text)})

    def all_of(self, task_id, key):
        found = [x for x in self.items if x["task_id"] == task_id and x["key"] == key]
        return [x["value"] for x in sorted(found, key=lambda x: x["map_index"])]

    def one(self, task_id, key, map_index):
        for x in self.items:
            if x["task_id"] == task_id and x["key"] == key and x["map_index"] == map_index:
                return True, x["value"]
        return False, None


class TaskInstance:
    """`ti` / `task_instance`."""

    def __init__(self, spec, task, xcoms, log_url):
        self.dag_id = spec.get("dag_id")
        self.task_id = spec.get("task_id")
        self.run_id = spec.get("run_id")
        self.try_number = spec.get("try_number")
        map_index = spec.get("map_index")
        self.map_index = -1 if map_index is None else map_index
        self.task = task
        self.log_url = log_url or ""
        self.hostname = os.uname().nodename
        self.state = "running"
        self.max_tries = getattr(task, "retries", 0) if task is not None else 0
        self._xcoms = xcoms

    def xcom_push(self, key, value, execution_date=None):
        self._xcoms.push(key, value)

    def xcom_pull(self, task_ids=None, dag_id=None, key=RETURN_KEY, include_prior_dates=False,
                  map_indexes=NOTSET, default=None, run_id=None, **kwargs):
        """Airflow 3.3's rules (its task SDK's `RuntimeTaskInstance.xcom_pull`), which differ
        from dag-format.md's (docs/airflow-differences.md).

        Without `map_indexes`, every instance's value of each task goes into one flat list,
        in map-index order, a task that pushed nothing adding None — never `default`, which
        Airflow 3.3 ignores there — and one task asked for by a single id (or by none: the
        calling task) gives its lone value bare, so a mapped task with one instance gives
        its value, not a list. With `map_indexes` (an int, None meaning the unmapped value,
        or a list), each task and index gives its value or `default`, bare for one id and
        one index."""
        if include_prior_dates:
            raise NotImplementedError("xcom_pull(include_prior_dates=True) is not supported by Updraft")
        if dag_id not in (None, self.dag_id) or run_id not in (None, self.run_id):
            raise NotImplementedError("xcom_pull from another DAG or run is not supported by Updraft")
        single_task = isinstance(task_ids, str) or task_ids is None
        ids = [self.task_id] if task_ids is None else ([task_ids] if isinstance(task_ids, str) else list(task_ids))
        if map_indexes is NOTSET:
            values = []
            for task_id in ids:
                found = self._xcoms.all_of(task_id, key)
                if found:
                    values.extend(found)
                else:
                    values.append(None)
            if single_task and len(values) == 1:
                return values[0]
            return values
        single_index = map_indexes is None or isinstance(map_indexes, int)
        if map_indexes is None:
            indexes = [-1]
        elif single_index:
            indexes = [map_indexes]
        else:
            indexes = list(map_indexes)
        values = []
        for task_id in ids:
            for index in indexes:
                ok, value = self._xcoms.one(task_id, key, index)
                values.append(value if ok else default)
        if single_task and single_index:
            return values[0]
        return values

    def _xcom_sequence(self, task_id, key=RETURN_KEY):
        """Every value the instances of the mapped task `task_id` pushed, in map-index order:
        what Airflow resolves a mapped task's XComArg to (its LazyXComSequence), a list even
        of one value, unlike `xcom_pull`."""
        return self._xcoms.all_of(task_id, key)

    def get_template_context(self):
        return state.context_stack[-1] if state.context_stack else {}

    def __repr__(self):
        return "<TaskInstance: %s.%s %s [%s]>" % (self.dag_id, self.task_id, self.run_id, self.state)


class DagRun:
    def __init__(self, data):
        data = data or {}
        self.dag_id = data.get("dag_id")
        self.run_id = data.get("run_id")
        self.run_type = data.get("run_type")
        self.logical_date = parse_datetime(data.get("logical_date"))
        self.execution_date = self.logical_date
        self.data_interval_start = parse_datetime(data.get("data_interval_start"))
        self.data_interval_end = parse_datetime(data.get("data_interval_end"))
        self.conf = data.get("conf") or {}
        self.external_trigger = self.run_type == "manual"

    def __getitem__(self, name):
        return getattr(self, name)

    def get(self, name, default=None):
        return getattr(self, name, default)

    def __repr__(self):
        return "<DagRun %s @ %s: %s>" % (self.dag_id, self.logical_date, self.run_id)


class _VariableAccessor:
    def __init__(self, deserialize_json):
        self._json = deserialize_json

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return Variable.get(name, deserialize_json=self._json)

    def get(self, name, default_var=None):
        return Variable.get(name, default_var=default_var, deserialize_json=self._json)


class _ConnectionAccessor:
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return get_connection(name)

    def get(self, name, default_conn=None):
        try:
            return get_connection(name)
        except AirflowException:
            return default_conn


class _VarNamespace(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def build_context(spec, dag, task):
    """The Airflow context of this try (a dict, as Airflow's Context is a mapping)."""
    import airflow.macros as macros

    given = dict(spec.get("context") or {})
    extra = spec.get("airflow") or {}
    xcoms = XComStore(spec.get("xcoms"), spec.get("task_id"), spec.get("map_index", -1))
    ti = TaskInstance(spec, task, xcoms, extra.get("log_url"))
    dag_run = DagRun(given.get("dag_run") or {})
    logical = parse_datetime(given.get("logical_date"))
    params = ParamsDict()
    for source in (dag.params if dag is not None else {}, getattr(task, "params", None) or {}):
        for name, value in source.items():
            params[name] = value.resolve(suppress_exception=True) if isinstance(value, Param) else value
    params.update(given.get("params") or {})
    ctx = {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "run_id": given.get("run_id", spec.get("run_id")),
        "dag_run": dag_run,
        "conf": given.get("conf") if given.get("conf") is not None else dag_run.conf,
        "params": params,
        "ds": given.get("ds"),
        "ds_nodash": given.get("ds_nodash"),
        "ts": given.get("ts"),
        "ts_nodash": given.get("ts_nodash"),
        "ts_nodash_with_tz": (given.get("ts") or "").replace("-", "").replace(":", "") or None,
        "logical_date": logical,
        "execution_date": logical,
        "data_interval_start": parse_datetime(given.get("data_interval_start")),
        "data_interval_end": parse_datetime(given.get("data_interval_end")),
        "map_index_template": None,
        "try_number": spec.get("try_number"),
        "var": _VarNamespace(json=_VariableAccessor(True), value=_VariableAccessor(False)),
        "conn": _ConnectionAccessor(),
        "macros": macros,
        "inlets": [],
        "outlets": [],
        "inlet_events": {},
        "outlet_events": {},
        "triggering_asset_events": {},
        "test_mode": False,
        "task_instance_key_str": "%s__%s__%s" % (spec.get("dag_id"), spec.get("task_id"), given.get("ds_nodash")),
    }
    if getattr(dag, "user_defined_macros", None):
        ctx.update(dag.user_defined_macros)
    return ctx


def get_current_context():
    if not state.context_stack:
        raise AirflowException(
            "Current context was requested but no context was found! Are you running within a task?"
        )
    return state.context_stack[-1]
