"""BaseOperator: a task's definition, its place in a DAG and task group, default_args, and
dynamic task mapping (`partial`/`expand`).

As in Airflow, `default_args` (the DAG's, overridden by the enclosing task groups', then by
the operator's own `default_args=`) fill every argument of the operator's `__init__` chain
that the call did not pass explicitly. A metaclass wraps each operator class's `__init__`
to do that once, on the outermost call.
"""

import datetime
import functools
import inspect
import logging
import os
import re
import sys

from . import state
from .deps import DependencyMixin
from .exceptions import AirflowException, DuplicateTaskIdFound
from .xcomarg import XComArg

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# BaseOperator arguments Updraft accepts but has no use for (they configure parts of Airflow
# it does not have, such as executors, SLAs or resource hints).
IGNORED_ARGS = (
    "start_date",
    "end_date",
    "ignore_first_depends_on_past",
    "wait_for_past_depends_before_skipping",
    "weight_rule",
    "sla",
    "resources",
    "run_as_user",
    "task_concurrency",
    "max_active_tis_per_dag",
    "max_active_tis_per_dagrun",
    "executor_config",
    "executor",
    "inlets",
    "outlets",
    "doc",
    "doc_json",
    "doc_yaml",
    "doc_rst",
    "task_display_name",
    "logger_name",
    "allow_nested_operators",
    "map_index_template",
    "on_skipped_callback",
    "provide_context",
    "email_on_success",
    "retry_exponential_backoff_max",
)


def creation_line():
    """The line of the DAG file being loaded that is executing now, or None."""
    target = state.fileloc
    frame = sys._getframe(1)
    while frame is not None:
        if target and frame.f_code.co_filename == target:
            return frame.f_lineno
        frame = frame.f_back
    return None


def merged_default_args(dag, group, own):
    merged = {}
    if dag is not None:
        merged.update(dag.default_args or {})
    if group is not None:
        merged.update(group.merged_default_args())
    merged.update(own or {})
    return merged


@functools.lru_cache(maxsize=None)
def declared_arguments(cls):
    """The `_updraft_arguments` tables of the class chain of `cls`, merged (a subclass's
    entry wins): name → default."""
    merged = {}
    for klass in reversed(cls.__mro__):
        merged.update(klass.__dict__.get("_updraft_arguments", {}))
    return merged


def take_arguments(op, kwargs):
    """Set each declared argument of `op`'s class chain as the attribute of its name: the
    value given in `kwargs` (removed from it), else the default."""
    for name, default in declared_arguments(type(op)).items():
        setattr(op, name, kwargs.pop(name, default))


@functools.lru_cache(maxsize=None)
def accepted_args(cls):
    """Names of the keyword arguments the class chain of `cls` takes: those its `__init__`
    signatures name, and those its `_updraft_arguments` tables declare."""
    names = set(declared_arguments(cls))
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        init = getattr(init, "__wrapped__", init)
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        for p in params.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.add(p.name)
    names.discard("self")
    return frozenset(names)


def _wrap_init(init):
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if self.__dict__.get("_updraft_initializing"):
            return init(self, *args, **kwargs)
        self.__dict__["_updraft_initializing"] = True
        try:
            dag = kwargs.get("dag") or state.current_dag()
            group = kwargs.get("task_group") or (state.current_group(dag) if dag else None)
            defaults = merged_default_args(dag, group, kwargs.get("default_args"))
            accepted = accepted_args(type(self))
            for key, value in defaults.items():
                if key in accepted and key not in kwargs:
                    kwargs[key] = value
            # The arguments given, explicitly or through default_args.
            self.__dict__["_updraft_given"] = frozenset(kwargs)
            init(self, *args, **kwargs)
        finally:
            self.__dict__.pop("_updraft_initializing", None)
        self._updraft_after_init()

    __init__._updraft_wrapped = True
    return __init__


class OperatorMeta(type):
    """Wraps every operator class's `__init__` so default_args apply once."""

    def __new__(mcls, name, bases, namespace, **kwargs):
        init = namespace.get("__init__")
        if init is not None and not getattr(init, "_updraft_wrapped", False):
            namespace["__init__"] = _wrap_init(init)
        return super().__new__(mcls, name, bases, namespace, **kwargs)


class _LoggerDescriptor:
    def __get__(self, obj, owner):
        cls = owner if obj is None else type(obj)
        return logging.getLogger("airflow.task.operators.%s.%s" % (cls.__module__, cls.__name__))


class MappedArgument:
    """Stands in for an argument given to `expand()` until a mapped instance runs."""

    def __init__(self, name, value):
        self.name = name
        self.value = value

    def __repr__(self):
        return "<mapped argument %s>" % self.name


class BaseOperator(DependencyMixin, metaclass=OperatorMeta):
    """The base of every task."""

    template_fields = ()
    template_ext = ()
    template_fields_renderers = {}
    ui_color = "#fff"
    ui_fgcolor = "#000"
    shallow_copy_attrs = ()
    operator_extra_links = ()
    # Set on the TaskFlow and sensor classes; read by the serializer.
    is_sensor = False
    log = _LoggerDescriptor()

    # Keyword arguments kept as attributes of the same name, with their defaults. The
    # package's operator classes declare theirs in the same way (a user's operator keeps its
    # own `__init__`); BaseOperator.__init__ takes those of the whole class chain (see
    # take_arguments), and default_args fill them like any other argument. A default is
    # shared by every instance, so it must be immutable.
    _updraft_arguments = {
        "owner": None,
        "email": None,
        "email_on_retry": True,
        "email_on_failure": True,
        "retries": 0,
        "retry_delay": datetime.timedelta(seconds=300),
        "retry_exponential_backoff": False,
        "max_retry_delay": None,
        "depends_on_past": False,
        "wait_for_downstream": False,
        "priority_weight": 1,
        "queue": "default",
        "pool": None,
        "pool_slots": 1,
        "execution_timeout": None,
        "on_execute_callback": None,
        "on_failure_callback": None,
        "on_success_callback": None,
        "on_retry_callback": None,
        "trigger_rule": "all_success",
        "do_xcom_push": True,
        "multiple_outputs": False,
    }

    def __init__(
        self,
        task_id,
        dag=None,
        params=None,
        default_args=None,
        pre_execute=None,
        post_execute=None,
        task_group=None,
        doc_md=None,
        **kwargs
    ):
        take_arguments(self, kwargs)
        unknown = {k: v for k, v in kwargs.items() if k not in IGNORED_ARGS}
        if unknown:
            raise TypeError(
                "Invalid arguments were passed to %s (task_id: %s): %s"
                % (type(self).__name__, task_id, ", ".join(sorted(unknown)))
            )
        if not isinstance(task_id, str):
            raise TypeError("task_id must be a string, got %r" % (task_id,))
        if not TASK_ID_PATTERN.match(task_id) or len(task_id) > 250:
            raise ValueError(
                "invalid task_id %r: it must be 1 to 250 characters of letters, digits, "
                "'_', '-' and '.'" % task_id
            )
        self.params = params or {}
        self._pre_execute_hook = pre_execute
        self._post_execute_hook = post_execute
        self.doc_md = doc_md if doc_md is not None else kwargs.get("doc")
        self.upstream_task_ids = set()
        self.downstream_task_ids = set()
        self.created_line = creation_line()
        self._updraft_expand = None

        dag = dag or state.current_dag()
        if dag is None:
            if state.context_stack:
                # An operator created and executed inside a running task.
                self.dag = None
                self.task_group = None
                self.task_id = task_id
                return
            raise AirflowException(
                "task %r was created outside a DAG: create it inside `with DAG(...)`, in a "
                "@dag function, or pass dag=..." % task_id
            )
        group = task_group or state.current_group(dag)
        self.dag = dag
        self.task_group = group
        self.task_id = group.child_id(task_id)
        if self.task_id in dag.task_dict:
            raise DuplicateTaskIdFound(
                "Task id '%s' has already been added to the DAG" % self.task_id
            )
        dag.task_dict[self.task_id] = self
        group.add(self)

    # -- construction ---------------------------------------------------------------
    def _updraft_after_init(self):
        self.__dict__["_updraft_ready"] = True
        for name in self.template_fields:
            self._link_xcomargs(getattr(self, name, None))

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if self.__dict__.get("_updraft_ready") and name in type(self).template_fields:
            self._link_xcomargs(value)

    def _link_xcomargs(self, value):
        if self.dag is None:
            return
        for ref in XComArg.iter_xcom_references(value):
            if ref.operator is not self:
                self._add_upstream(ref.operator)

    # -- dependencies ---------------------------------------------------------------
    def _roots(self):
        return [self]

    def _leaves(self):
        return [self]

    def _add_upstream(self, other):
        if other is self:
            raise AirflowException("task %r cannot depend on itself" % self.task_id)
        if other.dag is not self.dag:
            raise AirflowException(
                "tasks %r and %r are in different DAGs; dependencies must stay in one DAG"
                % (other.task_id, self.task_id)
            )
        self.upstream_task_ids.add(other.task_id)
        other.downstream_task_ids.add(self.task_id)

    @property
    def upstream_list(self):
        return [self.dag.task_dict[t] for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self):
        return [self.dag.task_dict[t] for t in sorted(self.downstream_task_ids)]

    def get_direct_relatives(self, upstream=False):
        return self.upstream_list if upstream else self.downstream_list

    @property
    def output(self):
        return XComArg(self)

    @property
    def dag_id(self):
        return self.dag.dag_id if self.dag is not None else None

    @property
    def task_type(self):
        return type(self).__name__

    @property
    def operator_name(self):
        return type(self).__name__

    @property
    def label(self):
        group = self.task_group
        if group is not None and group.group_id and self.task_id.startswith(group.group_id + "."):
            return self.task_id[len(group.group_id) + 1:]
        return self.task_id

    @property
    def is_mapped(self):
        return self._updraft_expand is not None

    def has_dag(self):
        return self.dag is not None

    # -- mapping --------------------------------------------------------------------
    @classmethod
    def partial(cls, **kwargs):
        if "task_id" not in kwargs:
            raise TypeError("partial() of %s needs task_id" % cls.__name__)
        return PartialOperator(cls, kwargs)

    def expand_kwargs(self, *args, **kwargs):
        raise NotImplementedError("expand_kwargs() is not supported by Updraft")

    # -- running --------------------------------------------------------------------
    def pre_execute(self, context):
        if self._pre_execute_hook is not None:
            self._pre_execute_hook(context)

    def execute(self, context):
        raise NotImplementedError(
            "%s does not implement execute(context)" % type(self).__name__
        )

    def post_execute(self, context, result=None):
        if self._post_execute_hook is not None:
            self._post_execute_hook(context, result)

    def on_kill(self):
        pass

    def render_template(self, content, context, jinja_env=None, seen_oids=None):
        raise NotImplementedError(
            "render_template() is not supported by Updraft: template fields are rendered "
            "before the task runs"
        )

    def render_template_fields(self, context, jinja_env=None):
        """Template fields were rendered before the try started; nothing left to do."""

    def prepare_for_execution(self):
        return self

    @staticmethod
    def xcom_push(context, key, value):
        context["ti"].xcom_push(key=key, value=value)

    @staticmethod
    def xcom_pull(context, task_ids=None, key="return_value", **kwargs):
        return context["ti"].xcom_pull(task_ids=task_ids, key=key, **kwargs)

    def __repr__(self):
        return "<Task(%s): %s>" % (type(self).__name__, self.task_id)


class PartialOperator:
    """`Operator.partial(...)`: waits for `.expand(...)` to make the mapped task."""

    def __init__(self, cls, kwargs):
        self.operator_class = cls
        self.kwargs = kwargs

    def expand(self, **mapped):
        return make_mapped(self.operator_class, self.kwargs, mapped)

    def expand_kwargs(self, *args, **kwargs):
        raise NotImplementedError("expand_kwargs() is not supported by Updraft")


def check_expand_values(mapped, what):
    for name, value in mapped.items():
        if not isinstance(value, (list, tuple, dict, XComArg)):
            raise TypeError(
                "%s: the value given to expand() for %r must be a list, a dict or an "
                "XComArg, got %s" % (what, name, type(value).__name__)
            )


def make_mapped(cls, partial_kwargs, mapped):
    if not mapped:
        raise TypeError("expand() needs at least one argument to map over")
    accepted = accepted_args(cls)
    for name in mapped:
        if name in ("task_id", "dag", "task_group") or name not in accepted:
            raise TypeError("%s.expand() got an unexpected keyword argument %r" % (cls.__name__, name))
        if name in partial_kwargs:
            raise TypeError("argument %r is given to both partial() and expand()" % name)
    check_expand_values(mapped, "%s %s" % (cls.__name__, partial_kwargs.get("task_id")))
    kwargs = dict(partial_kwargs)
    for name, value in mapped.items():
        kwargs[name] = MappedArgument(name, value)
    op = cls(**kwargs)
    op._updraft_expand = dict(mapped)
    for value in mapped.values():
        op._link_xcomargs(value)
    return op
