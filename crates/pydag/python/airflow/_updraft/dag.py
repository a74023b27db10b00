"""The DAG object and the @dag decorator.

Every DAG created while a file is imported is remembered (state.created_dags), so DAGs made
in a `with` block or by calling a @dag function count even when no module global holds
them, as in Airflow 3.
"""

import datetime
import functools
import re

from . import state
from .baseoperator import creation_line
from .exceptions import AirflowException
from .taskgroup import TaskGroup

DAG_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")

_NOTSET = object()


class DAG:
    def __init__(
        self,
        dag_id,
        description=None,
        schedule=_NOTSET,
        schedule_interval=_NOTSET,
        timetable=None,
        start_date=None,
        end_date=None,
        template_searchpath=None,
        template_undefined=None,
        user_defined_macros=None,
        user_defined_filters=None,
        default_args=None,
        concurrency=None,
        max_active_tasks=None,
        max_active_runs=None,
        max_consecutive_failed_dag_runs=None,
        dagrun_timeout=None,
        sla_miss_callback=None,
        default_view=None,
        orientation=None,
        catchup=None,
        on_success_callback=None,
        on_failure_callback=None,
        doc_md=None,
        params=None,
        access_control=None,
        is_paused_upon_creation=None,
        jinja_environment_kwargs=None,
        render_template_as_native_obj=False,
        tags=None,
        owner_links=None,
        auto_register=True,
        fail_fast=False,
        dag_display_name=None,
        disable_bundle_versioning=False,
        deadline=None,
        fileloc=None,
    ):
        if not isinstance(dag_id, str) or not DAG_ID_PATTERN.match(dag_id) or len(dag_id) > 250:
            raise ValueError(
                "invalid dag_id %r: it must be 1 to 250 characters of letters, digits, "
                "'_', '-' and '.'" % (dag_id,)
            )
        self.dag_id = dag_id
        self.description = description
        self.default_args = dict(default_args or {})
        self.start_date = start_date if start_date is not None else self.default_args.get("start_date")
        self.end_date = end_date if end_date is not None else self.default_args.get("end_date")
        # Which argument set the schedule, kept for the serializer's messages.
        if timetable is not None:
            self.schedule, self.schedule_source = timetable, "timetable"
        elif schedule is not _NOTSET:
            self.schedule, self.schedule_source = schedule, "schedule"
        elif schedule_interval is not _NOTSET:
            self.schedule, self.schedule_source = schedule_interval, "schedule_interval"
        else:
            self.schedule, self.schedule_source = None, "schedule"
        self.template_searchpath = template_searchpath
        self.user_defined_macros = user_defined_macros or {}
        self.user_defined_filters = user_defined_filters or {}
        self.max_active_tasks = max_active_tasks if max_active_tasks is not None else concurrency
        self.max_active_runs = max_active_runs
        self.dagrun_timeout = dagrun_timeout
        self.catchup = bool(catchup) if catchup is not None else False
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.sla_miss_callback = sla_miss_callback
        self.doc_md = doc_md
        self.params = dict(params or {})
        self.is_paused_upon_creation = is_paused_upon_creation
        self.render_template_as_native_obj = render_template_as_native_obj
        self.tags = tags
        self.fail_fast = fail_fast
        self.fileloc = fileloc or state.fileloc
        self.created_line = creation_line()
        self.task_dict = {}
        self.task_group = TaskGroup(None, dag=self)
        self.error = None
        if auto_register:
            state.created_dags.append(self)

    # -- tasks ----------------------------------------------------------------------
    @property
    def tasks(self):
        return list(self.task_dict.values())

    @property
    def task_ids(self):
        return list(self.task_dict)

    @property
    def roots(self):
        return [t for t in self.task_dict.values() if not t.upstream_task_ids]

    @property
    def leaves(self):
        return [t for t in self.task_dict.values() if not t.downstream_task_ids]

    def get_task(self, task_id):
        try:
            return self.task_dict[task_id]
        except KeyError:
            raise AirflowException("task %r is not in DAG %r" % (task_id, self.dag_id)) from None

    def has_task(self, task_id):
        return task_id in self.task_dict

    def add_task(self, task):
        if task.dag is not self:
            raise AirflowException(
                "task %r belongs to another DAG; create it inside this DAG instead" % task.task_id
            )

    def add_tasks(self, tasks):
        for task in tasks:
            self.add_task(task)

    @property
    def owner(self):
        return self.default_args.get("owner")

    @property
    def folder(self):
        import os

        return os.path.dirname(self.fileloc) if self.fileloc else None

    # -- context manager ------------------------------------------------------------
    def __enter__(self):
        state.dag_stack.append(self)
        return self

    def __exit__(self, *exc):
        state.dag_stack.remove(self)
        return False

    def test(self, *args, **kwargs):
        raise NotImplementedError("dag.test() is not supported by Updraft: run `dagctl` instead")

    def cli(self, *args, **kwargs):
        raise NotImplementedError("dag.cli() is not supported by Updraft")

    def __repr__(self):
        return "<DAG: %s>" % self.dag_id


class _DagFunction:
    """A function decorated with @dag: calling it builds the DAG (and returns it)."""

    def __init__(self, function, kwargs):
        self.function = function
        self.kwargs = kwargs
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        options = dict(self.kwargs)
        dag_id = options.pop("dag_id", None) or self.function.__name__
        if "doc_md" not in options and self.function.__doc__:
            options["doc_md"] = self.function.__doc__
        # Arguments of the function become DAG params (Airflow's behaviour).
        import inspect

        params = dict(options.pop("params", None) or {})
        try:
            signature = inspect.signature(self.function)
            bound = signature.bind_partial(*args, **kwargs)
            for name, p in signature.parameters.items():
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                if name in bound.arguments:
                    params.setdefault(name, bound.arguments[name])
                elif p.default is not p.empty:
                    params.setdefault(name, p.default)
        except (TypeError, ValueError):
            pass
        dag = DAG(dag_id, params=params or None, **options)
        with dag:
            self.function(*args, **kwargs)
        return dag


def dag(dag_id=None, **kwargs):
    """@dag, @dag(), or @dag(dag_id=..., schedule=..., ...)."""
    if callable(dag_id) and not kwargs:
        return _DagFunction(dag_id, {})

    def wrap(function):
        options = dict(kwargs)
        if dag_id is not None:
            options["dag_id"] = dag_id
        return _DagFunction(function, options)

    return wrap
