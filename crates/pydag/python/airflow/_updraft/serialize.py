"""A DAG object as Updraft's DAG document (dag-format.md's JSON form).

default_args are already applied to each operator, so every task carries its resolved keys
(only those that differ from dag-format's defaults). Dependencies are written as each task's
`depends_on` (full ids). Operators that Updraft runs natively become `empty`, `bash`,
`sensor`, `email` or `trigger_dag` tasks (task_kind decides); every other one becomes the
`airflow` kind, run by the Python runner, with the template fields that hold Jinja in
`fields` for the worker to render, and the names of its Python callbacks in `callbacks`.
A DAG with Python callbacks names them in its own `airflow: {callbacks}` block: the
scheduler runs them through the host's callback mode when a run ends.
"""

import datetime
import json
import os

from . import operators, sensors
from .baseoperator import MappedArgument, declared_arguments
from .decorators import DecoratedOperator
from .params import serialize_param
from .taskgroup import TaskGroup
from .timeutil import number, rfc3339, tz_name
from .xcomarg import XComArg


class DagError(Exception):
    """A DAG that cannot be expressed as an Updraft DAG; `line` is where it was defined."""

    def __init__(self, message, line=None):
        super().__init__(message)
        self.line = line


TRIGGER_RULES = (
    "all_success",
    "all_failed",
    "all_done",
    "all_done_min_one_success",
    "all_skipped",
    "one_success",
    "one_failed",
    "one_done",
    "none_failed",
    "none_failed_min_one_success",
    "none_skipped",
    "always",
)
TRIGGER_RULE_ALIASES = {"none_failed_or_skipped": "none_failed_min_one_success", "dummy": "always"}

PRESETS = {
    "@once": "@once",
    "@hourly": "@hourly",
    "@daily": "@daily",
    "@weekly": "@weekly",
    "@monthly": "@monthly",
    "@yearly": "@yearly",
    "@annually": "@yearly",
    "@midnight": "@daily",
    "@quarterly": "0 0 1 */3 *",
}

CALLBACKS = ("on_execute_callback", "on_failure_callback", "on_success_callback", "on_retry_callback")
DAG_CALLBACKS = ("on_success_callback", "on_failure_callback")


# -- values ---------------------------------------------------------------------------------


def has_jinja(text):
    return "{{" in text or "{%" in text


def json_form(op, value, other):
    """(JSON form of an operator's value, whether it holds Jinja or a template file). A
    string naming one of the operator's template files becomes the file's text; an object
    with no JSON form becomes `other(object)`."""
    if isinstance(value, str):
        content = template_file(op, value)
        if content is not None:
            return content, True
        return value, has_jinja(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value, False
    if isinstance(value, (list, tuple)):
        items = [json_form(op, v, other) for v in value]
        return [i[0] for i in items], any(i[1] for i in items)
    if isinstance(value, dict):
        items = {str(k): json_form(op, v, other) for k, v in value.items()}
        return {k: i[0] for k, i in items.items()}, any(i[1] for i in items.values())
    return other(value), False


def encode_field(value, op):
    """json_form for the `airflow` kind's fields. Values that have no JSON form (XComArgs,
    mapped arguments, other objects) become null: the runner keeps the operator's own value
    at those places."""
    return json_form(op, value, lambda _: None)


class NotNative(Exception):
    """A value that a native kind's block cannot hold."""


def native_value(op, value, xcoms=False):
    """json_form for a native kind's block (templates stay Jinja text, rendered by Updraft).
    With `xcoms`, an XComArg becomes the template that pulls it; any other object raises
    NotNative."""

    def other(obj):
        if xcoms and isinstance(obj, XComArg):
            return obj.template()
        raise NotNative(obj)

    return json_form(op, value, other)[0]


def changed_arguments(op, names):
    """The declared arguments among `names` that `op` holds another value than their default
    for (an empty value stands for an empty default)."""
    defaults = declared_arguments(type(op))
    changed = []
    for name in names:
        value, default = getattr(op, name), defaults[name]
        if not (value is default or value == default or (not value and not default)):
            changed.append(name)
    return changed


def template_file(op, value):
    """The text of the template file `value` names, when it ends with one of the operator's
    template extensions (looked up in the DAG's template_searchpath, then its folder)."""
    exts = tuple(getattr(op, "template_ext", ()) or ())
    if not exts or not value.endswith(exts):
        return None
    dag = op.dag
    folders = []
    searchpath = getattr(dag, "template_searchpath", None)
    if isinstance(searchpath, str):
        folders.append(searchpath)
    elif searchpath:
        folders.extend(searchpath)
    if dag is not None and dag.folder:
        folders.append(dag.folder)
    for folder in folders:
        path = os.path.join(folder, value)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return f.read()
    raise DagError(
        "task %r: template file %r was not found (looked in %s)" % (op.task_id, value, ", ".join(folders) or "nothing"),
        op.created_line,
    )


def json_value(value, what, line):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise DagError("%s is not JSON-serializable: %r" % (what, value), line) from None
    return value


def expand_value(op, name, value):
    if isinstance(value, XComArg):
        return value.template()
    if isinstance(value, dict):
        value = [[k, v] for k, v in value.items()]
    if isinstance(value, tuple):
        value = list(value)
    return json_value(value, "task %r: the value expanded for %r" % (op.task_id, name), op.created_line)


# -- schedule -------------------------------------------------------------------------------


def schedule_value(dag):
    value = dag.schedule
    line = dag.created_line
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "@continuous":
            raise DagError("schedule '@continuous' is not supported by Updraft", line)
        if text.startswith("@"):
            if text not in PRESETS:
                raise DagError("unknown schedule preset %r" % text, line)
            return PRESETS[text]
        return text
    if isinstance(value, datetime.timedelta):
        return timedelta_cron(value, dag.start_date, line)
    cron = getattr(value, "_updraft_cron", None)
    if cron is not None:
        return cron
    if isinstance(value, (list, tuple)) or type(value).__name__ in ("Asset", "Dataset", "AssetAll", "AssetAny"):
        raise DagError("asset (data-aware) schedules are not supported by Updraft", line)
    raise DagError("%s=%r cannot be expressed as an Updraft schedule" % (dag.schedule_source, value), line)


def timedelta_cron(delta, start, line):
    total = delta.total_seconds()
    minute = hour = 0
    if isinstance(start, datetime.datetime):
        minute, hour = start.minute, start.hour
    if total > 0 and total % 60 == 0:
        minutes = int(total // 60)
        if minutes < 60 and 60 % minutes == 0:
            if minutes == 1:
                return "* * * * *"
            offset = minute % minutes
            return "%s/%d * * * *" % ("*" if offset == 0 else "%d-59" % offset, minutes)
        if minutes % 60 == 0:
            hours = minutes // 60
            if hours == 24:
                return "%d %d * * *" % (minute, hour)
            if 24 % hours == 0:
                if hours == 1:
                    return "%d * * * *" % minute
                offset = hour % hours
                return "%d %s/%d * * *" % (minute, "*" if offset == 0 else "%d-23" % offset, hours)
    raise DagError(
        "schedule %r (%s) does not divide a day evenly, so it has no cron equivalent; "
        "use a cron expression" % (delta, _describe_delta(delta)),
        line,
    )


def _describe_delta(delta):
    return "every %s" % delta


# -- the DAG ----------------------------------------------------------------------------------


def serialize_dag(dag):
    if not dag.task_dict:
        # dag-format requires a task (Updraft's parser refuses the DAG otherwise); Airflow
        # accepts an empty DAG, whose runs have nothing to do.
        raise DagError(
            "DAG %r has no tasks: Updraft needs at least one task in a DAG (add one, or "
            "remove the DAG)" % dag.dag_id,
            dag.created_line,
        )
    doc = {"dag_id": dag.dag_id}
    if dag.description:
        doc["description"] = dag.description
    doc["schedule"] = schedule_value(dag)
    start = dag.start_date
    if start is not None:
        doc["start_date"] = rfc3339(start)
        if isinstance(start, datetime.datetime) and start.tzinfo is not None:
            name = tz_name(start.tzinfo)
            if name and name != "UTC":
                doc["timezone"] = name
    timetable = dag.schedule
    if getattr(timetable, "_updraft_cron", None) is not None:
        if getattr(timetable, "data_intervals", False):
            doc["data_intervals"] = True
        if timetable.timezone and timetable.timezone != "UTC":
            doc["timezone"] = timetable.timezone
    if dag.end_date is not None:
        doc["end_date"] = rfc3339(dag.end_date)
    if dag.catchup:
        doc["catchup"] = True
    if dag.dagrun_timeout is not None:
        doc["dagrun_timeout"] = number(dag.dagrun_timeout)
    if dag.max_active_runs is not None:
        doc["max_active_runs"] = dag.max_active_runs
    if dag.max_active_tasks is not None:
        doc["max_active_tasks"] = dag.max_active_tasks
    if dag.is_paused_upon_creation is not None:
        doc["is_paused_upon_creation"] = bool(dag.is_paused_upon_creation)
    if dag.tags:
        tags = sorted(dag.tags) if isinstance(dag.tags, (set, frozenset)) else list(dag.tags)
        doc["tags"] = [str(t) for t in tags]
    owner = dag.default_args.get("owner")
    if owner:
        doc["owner"] = str(owner)
    if dag.params:
        doc["params"] = {
            name: json_value(serialize_param(value), "param %r" % name, dag.created_line)
            for name, value in dag.params.items()
        }
    if dag.doc_md:
        doc["doc_md"] = dag.doc_md
    callbacks = callbacks_set(dag, DAG_CALLBACKS)
    if callbacks:
        doc["airflow"] = {"callbacks": callbacks}
    tasks, groups, edges = serialize_groups(dag)
    doc["tasks"] = tasks
    if groups:
        doc["groups"] = groups
    if edges:
        doc["edges"] = edges
    return doc


def serialize_groups(dag):
    """Top-level tasks and nested groups, placed so each task's full id is its group path
    plus its short id. A group with prefix_group_id=False adds no prefix, so its tasks sit
    with the nearest prefixing ancestor (or at the top level)."""
    root = {"tasks": [], "groups": []}
    slots = {None: root}
    paths = {id(root): None}
    edges = []
    known = set(dag.task_dict) | set(all_group_ids(dag.task_group))

    def slot_for(group, full_id):
        """The emitted group a node with `full_id` belongs in, and its short id there."""
        g = group
        while g is not None and not g.is_root:
            if g.prefix_group_id and full_id.startswith(g.group_id + "."):
                return emitted(g), full_id[len(g.group_id) + 1:]
            g = g.parent_group
        return root, full_id

    def emitted(group):
        if group.group_id in slots:
            return slots[group.group_id]
        parent, short = slot_for(group.parent_group, group.group_id)
        entry = {"id": short}
        if group.tooltip:
            entry["tooltip"] = group.tooltip
        entry["tasks"] = []
        entry["groups"] = []
        parent["groups"].append(entry)
        slots[group.group_id] = entry
        paths[id(entry)] = group.group_id
        return entry

    for op in dag.task_dict.values():
        parent, short = slot_for(op.task_group, op.task_id)
        if "." in short:
            raise DagError(
                "task id %r: Updraft reserves '.' for task group paths, and this task is not "
                "in a group named %r" % (op.task_id, short.rsplit(".", 1)[0]),
                op.created_line,
            )
        doc = serialize_task(op, short)
        scope = paths[id(parent)]
        if scope is not None:
            # Inside a group a short id names a sibling first; an upstream whose full id
            # reads as a sibling's is written as a top-level edge instead.
            ambiguous = [u for u in doc["depends_on"] if "%s.%s" % (scope, u) in known]
            for up in ambiguous:
                edges.append("%s >> %s" % (up, op.task_id))
            doc["depends_on"] = [u for u in doc["depends_on"] if u not in ambiguous]
        parent["tasks"].append(doc)

    return root["tasks"], without_empty(root["groups"]), edges


def all_group_ids(group):
    for child in group.children.values():
        if isinstance(child, TaskGroup):
            yield child.group_id
            yield from all_group_ids(child)


def without_empty(groups):
    """Drop groups that hold no task, and empty lists."""
    kept = []
    for group in groups:
        group["groups"] = without_empty(group["groups"])
        if not group["tasks"] and not group["groups"]:
            continue
        for key in ("tasks", "groups"):
            if not group[key]:
                del group[key]
        kept.append(group)
    return kept


# -- tasks ------------------------------------------------------------------------------------


def callbacks_set(holder, names):
    """The names among `names` whose attribute on `holder` holds a callback (or a non-empty
    list of them)."""
    return [name for name in names if getattr(holder, name, None)]


def has_callbacks(op):
    return bool(callbacks_set(op, CALLBACKS))


def serialize_task(op, short_id):
    doc = {"id": short_id}
    kind_key, kind_value, extra = task_kind(op)
    doc[kind_key] = kind_value
    doc["depends_on"] = sorted(op.upstream_task_ids)
    common_keys(op, doc)
    doc.update(extra)
    if getattr(op, "branch_kind", None):
        doc["branch"] = True
    if op._updraft_expand is not None:
        doc["expand"] = {name: expand_value(op, name, v) for name, v in op._updraft_expand.items()}
    return doc


def common_keys(op, doc):
    line = op.created_line
    rule = getattr(op.trigger_rule, "value", op.trigger_rule)
    rule = TRIGGER_RULE_ALIASES.get(rule, rule)
    if rule not in TRIGGER_RULES:
        raise DagError("task %r: trigger rule %r is not supported by Updraft" % (op.task_id, rule), line)
    if rule != "all_success":
        doc["trigger_rule"] = rule
    if op.retries:
        doc["retries"] = int(op.retries)
    if op.retry_delay is not None and number(op.retry_delay) != 300:
        doc["retry_delay"] = number(op.retry_delay)
    backoff = op.retry_exponential_backoff
    if backoff:
        doc["retry_exponential_backoff"] = True if backoff is True else backoff
    if op.max_retry_delay is not None and number(op.max_retry_delay) != 86400:
        doc["max_retry_delay"] = number(op.max_retry_delay)
    if op.execution_timeout is not None:
        doc["execution_timeout"] = number(op.execution_timeout)
    if op.depends_on_past:
        doc["depends_on_past"] = True
    if op.wait_for_downstream:
        doc["wait_for_downstream"] = True
    if op.pool and op.pool != "default_pool":
        doc["pool"] = op.pool
    if op.pool_slots != 1:
        doc["pool_slots"] = op.pool_slots
    if op.priority_weight != 1:
        doc["priority_weight"] = op.priority_weight
    if op.queue and op.queue != "default":
        doc["queue"] = op.queue
    if not op.do_xcom_push:
        doc["do_xcom_push"] = False
    from .mail import get_email_address_list

    email = get_email_address_list(op.email)
    if email:
        doc["email"] = email
        if not op.email_on_failure:
            doc["email_on_failure"] = False
        if op.email_on_retry:
            doc["email_on_retry"] = True
    if op.doc_md:
        doc["doc_md"] = op.doc_md


def task_kind(op):
    """(kind key, kind value, extra task keys): the one place that decides whether a task
    runs as a native Updraft kind. Only the package's own classes (never a user's subclass,
    whose `execute` may differ) without Python callbacks or mapping, and whose arguments all
    have a place in the native kind, become one; the rest run in Python (`airflow`), except
    those that cannot run there either, which are refused here."""
    cls = type(op)
    plain = not has_callbacks(op) and op._updraft_expand is None
    if plain and cls in (operators.EmptyOperator, operators.DummyOperator):
        return "empty", {}, {}
    if plain and cls is operators.BashOperator:
        native = native_bash(op)
        if native is not None:
            return native
    if cls is operators.EmailOperator:
        native = native_email(op, plain)
        if native is not None:
            return native
    if cls is operators.TriggerDagRunOperator:
        return native_trigger_dag(op, plain)
    if cls is sensors.ExternalTaskSensor:
        return native_external_task(op, plain)
    if plain and cls in (sensors.FileSensor, sensors.DateTimeSensor, sensors.DateTimeSensorAsync, sensors.TimeSensor, sensors.TimeSensorAsync):
        native = native_sensor(op)
        if native is not None:
            return native
    return airflow_kind(op)


def native_bash(op):
    if op.env is not None and not op.append_env:
        return None
    if op.skip_on_exit_code != [99] or op.output_processor is not None:
        return None
    command = op.bash_command
    if not isinstance(command, str):
        return None
    extra = {}
    if op.env:
        if not all(isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool) for k, v in op.env.items()):
            return None
        extra["env"] = {k: str(v) for k, v in op.env.items()}
    if op.cwd is not None:
        if not isinstance(op.cwd, str):
            return None
        extra["cwd"] = op.cwd
    content = template_file(op, command)
    return "bash", content if content is not None else command, extra


# EmailOperator arguments the `email` kind has no place for: set, they send the mail from
# Python (EmailOperator.execute).
EMAIL_PYTHON_ONLY = ("from_email", "files", "bcc", "mime_subtype", "mime_charset", "custom_headers")

# TriggerDagRunOperator arguments the `trigger_dag` kind has no place for. Python cannot make
# DAG runs, so a task that sets one is refused.
TRIGGER_DAG_UNSUPPORTED = (
    "trigger_run_id",
    "logical_date",
    "reset_dag_run",
    "skip_when_already_exists",
    "fail_when_dag_is_paused",
)


def native_email(op, plain):
    """`email: {to, cc, subject, html}`, or None when the mail must be sent from Python."""
    problem = op.unsupported()
    if problem is not None:
        raise DagError("task %r: EmailOperator: %s" % (op.task_id, problem), op.created_line)
    if not plain or changed_arguments(op, EMAIL_PYTHON_ONLY):
        return None
    try:
        block = {"to": native_value(op, op.to)}
        if op.cc:
            block["cc"] = native_value(op, op.cc)
        block["subject"] = native_value(op, op.subject)
        block["html"] = native_value(op, op.html_content)
    except NotNative:
        # An XComArg or another object: resolved by the Python runner.
        return None
    return "email", block, {}


def native_trigger_dag(op, plain):
    """`trigger_dag: {dag_id, conf, wait_for_completion, …}`; a DagError when the task needs
    what that kind cannot do."""
    line = op.created_line
    what = "task %r: TriggerDagRunOperator" % op.task_id
    if not plain:
        if op._updraft_expand is not None:
            because = "mapping (expand) is"
        else:
            names = [name for name in CALLBACKS if getattr(op, name, None)]
            because = "%s (set on the task or in default_args) %s" % (", ".join(names), "is" if len(names) == 1 else "are")
        raise DagError(
            "%s: %s not supported by Updraft: the task runs as the native trigger_dag kind, "
            "which calls no Python" % (what, because),
            line,
        )
    given = op.__dict__.get("_updraft_given", ())
    unsupported = [
        "execution_date" if name == "logical_date" and "execution_date" in given else name
        for name in changed_arguments(op, TRIGGER_DAG_UNSUPPORTED)
    ]
    if unsupported:
        raise DagError(
            "%s: %s %s not supported by Updraft (its native trigger_dag kind has no "
            "equivalent, and Python cannot make DAG runs)"
            % (what, ", ".join(unsupported), "is" if len(unsupported) == 1 else "are"),
            line,
        )
    try:
        block = {"dag_id": native_value(op, op.trigger_dag_id, xcoms=True)}
        if op.conf is not None:
            block["conf"] = native_value(op, op.conf, xcoms=True)
        if op.wait_for_completion:
            block["wait_for_completion"] = native_value(op, op.wait_for_completion)
            if "poke_interval" in given:
                poke = op.poke_interval
                block["poke_interval"] = poke if isinstance(poke, str) else number(poke)
            if op.allowed_states != ["success"]:
                block["allowed_states"] = op.allowed_states
            if op.failed_states != ["failed"]:
                block["failed_states"] = op.failed_states
    except NotNative as exc:
        raise DagError("%s: %r has no JSON form (conf must be JSON-serializable)" % (what, exc.args[0]), line) from None
    return "trigger_dag", block, {}


def sensor_keys(op):
    given = op.__dict__.get("_updraft_given", frozenset())
    keys = {}
    if "poke_interval" in given:
        keys["poke_interval"] = number(op.poke_interval)
    if "timeout" in given:
        keys["timeout"] = number(op.timeout)
    if "mode" in given:
        keys["mode"] = op.mode
    if "soft_fail" in given:
        keys["soft_fail"] = bool(op.soft_fail)
    if "exponential_backoff" in given:
        keys["exponential_backoff"] = bool(op.exponential_backoff)
    return keys


def native_sensor(op):
    if isinstance(op, sensors.FileSensor):
        if op.fs_conn_id not in (None, "fs_default") or not isinstance(op.filepath, str) or op.recursive:
            return None
        return "sensor", {"file": op.filepath}, sensor_keys(op)
    if isinstance(op, sensors.DateTimeSensor):
        return "sensor", {"time": {"after": op.target_time}}, sensor_keys(op)
    if isinstance(op, sensors.TimeSensor):
        target = op.target_time
        if not isinstance(target, datetime.time) or target.tzinfo is not None:
            return None
        start = op.dag.start_date
        if isinstance(start, datetime.datetime) and start.tzinfo is not None and tz_name(start.tzinfo) != "UTC":
            return None
        after = "{{ data_interval_end.strftime('%%Y-%%m-%%d') }}T%s+00:00" % target.strftime("%H:%M:%S")
        return "sensor", {"time": {"after": after}}, sensor_keys(op)
    return None


def native_external_task(op, plain):
    line = op.created_line
    what = "task %r: ExternalTaskSensor" % op.task_id
    if not plain:
        raise DagError("%s with callbacks or mapping is not supported by Updraft" % what, line)
    if op.execution_delta is not None or op.execution_date_fn is not None:
        raise DagError("%s with execution_delta or execution_date_fn is not supported by Updraft" % what, line)
    if op.external_task_group_id is not None:
        raise DagError("%s with external_task_group_id is not supported by Updraft" % what, line)
    if op.allowed_states not in (None, ["success"], ("success",), {"success"}):
        raise DagError("%s with allowed_states other than ['success'] is not supported by Updraft" % what, line)
    task_id = op.external_task_id
    ids = op.external_task_ids
    if ids is not None:
        ids = list(ids)
        if len(ids) != 1 or task_id is not None:
            raise DagError("%s waits for one task (or the whole run) in Updraft; got %r" % (what, ids), line)
        task_id = ids[0]
    probe = {"dag_id": op.external_dag_id}
    if task_id is not None:
        probe["task_id"] = task_id
    return "sensor", {"external_task": probe}, sensor_keys(op)


def airflow_kind(op):
    fields = {}
    for name in op.template_fields:
        value = getattr(op, name, None)
        if isinstance(value, MappedArgument):
            continue
        encoded, marked = encode_field(value, op)
        if marked:
            fields[name] = encoded
    name = getattr(op, "custom_operator_name", None) if isinstance(op, DecoratedOperator) else None
    block = {"operator": name or type(op).__name__, "fields": fields}
    callbacks = callbacks_set(op, CALLBACKS)
    if callbacks:
        block["callbacks"] = callbacks
    return "airflow", block, {}
