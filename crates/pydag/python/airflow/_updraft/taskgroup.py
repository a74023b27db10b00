"""Task groups: `with TaskGroup(...)`, the @task_group decorator, their ids (Airflow's
prefixing rule), default_args, and their roots and leaves for dependencies."""

import functools
import re

from . import state
from .baseoperator import creation_line
from .deps import DependencyMixin
from .exceptions import AirflowException, DuplicateTaskIdFound

GROUP_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+$")


class TaskGroup(DependencyMixin):
    def __init__(
        self,
        group_id,
        prefix_group_id=True,
        parent_group=None,
        dag=None,
        default_args=None,
        tooltip="",
        ui_color="CornflowerBlue",
        ui_fgcolor="#000",
        add_suffix_on_collision=False,
        group_display_name=None,
    ):
        self.prefix_group_id = prefix_group_id
        self.default_args = dict(default_args or {})
        self.tooltip = tooltip or ""
        self.children = {}
        self.created_line = creation_line()
        if group_id is None:
            # The root group of a DAG.
            self._group_id = None
            self.parent_group = None
            self.dag = dag
            self.used_group_ids = set()
            return
        if not isinstance(group_id, str) or not GROUP_ID_PATTERN.match(group_id):
            raise ValueError(
                "invalid group_id %r: it must be letters, digits, '_' and '-'" % (group_id,)
            )
        dag = dag or (parent_group.dag if parent_group else None) or state.current_dag()
        if dag is None:
            raise AirflowException(
                "task group %r was created outside a DAG: create it inside `with DAG(...)` "
                "or a @dag function, or pass dag=..." % group_id
            )
        self.dag = dag
        self.parent_group = parent_group or state.current_group(dag)
        self.used_group_ids = self.parent_group.used_group_ids
        self._group_id = group_id
        if self.group_id in self.used_group_ids:
            if not add_suffix_on_collision:
                raise DuplicateTaskIdFound("group_id '%s' has already been added to the DAG" % self.group_id)
            base = re.split(r"__\d+$", group_id)[0]
            n = 1
            while True:
                self._group_id = "%s__%d" % (base, n)
                if self.group_id not in self.used_group_ids:
                    break
                n += 1
        self.used_group_ids.add(self.group_id)
        self.parent_group.add(self)

    # -- ids ------------------------------------------------------------------------
    @property
    def group_id(self):
        parent = self.parent_group
        if self._group_id and parent is not None and parent.prefix_group_id and parent._group_id:
            return parent.child_id(self._group_id)
        return self._group_id

    @property
    def label(self):
        return self._group_id

    @property
    def is_root(self):
        return self._group_id is None

    def child_id(self, label):
        if self.prefix_group_id and self.group_id:
            return "%s.%s" % (self.group_id, label)
        return label

    def add(self, node):
        key = node.task_id if not isinstance(node, TaskGroup) else node.group_id
        if isinstance(node, TaskGroup):
            pass
        elif key in self.used_group_ids:
            raise DuplicateTaskIdFound("task id '%s' is already used by a task group" % key)
        else:
            self.used_group_ids.add(key)
        self.children[key] = node

    def merged_default_args(self):
        if self.parent_group is None:
            return dict(self.default_args)
        merged = self.parent_group.merged_default_args()
        merged.update(self.default_args)
        return merged

    # -- contents -------------------------------------------------------------------
    def iter_tasks(self):
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child.iter_tasks()
            else:
                yield child

    def __iter__(self):
        return self.iter_tasks()

    def get_roots(self):
        tasks = list(self.iter_tasks())
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if not (t.upstream_task_ids & ids)]

    def get_leaves(self):
        tasks = list(self.iter_tasks())
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if not (t.downstream_task_ids & ids)]

    def _roots(self):
        return self.get_roots()

    def _leaves(self):
        return self.get_leaves()

    # -- context manager ------------------------------------------------------------
    def __enter__(self):
        state.group_stack.append(self)
        return self

    def __exit__(self, *exc):
        state.group_stack.remove(self)
        return False

    def __repr__(self):
        return "<TaskGroup %s>" % (self.group_id,)


class _TaskGroupFunction:
    """A function decorated with @task_group: each call makes a group around what it builds."""

    def __init__(self, function, kwargs):
        self.function = function
        self.kwargs = kwargs
        functools.update_wrapper(self, function)

    def override(self, **kwargs):
        return _TaskGroupFunction(self.function, {**self.kwargs, **kwargs})

    def __call__(self, *args, **kwargs):
        options = dict(self.kwargs)
        options.setdefault("group_id", self.function.__name__)
        options.setdefault("add_suffix_on_collision", True)
        if not options.get("tooltip") and self.function.__doc__:
            options["tooltip"] = self.function.__doc__.strip()
        group = TaskGroup(**options)
        with group:
            result = self.function(*args, **kwargs)
        if isinstance(result, DependencyMixin) and not isinstance(result, TaskGroup):
            return result
        return group

    def expand(self, **kwargs):
        raise NotImplementedError("mapping a task group (@task_group ... .expand()) is not supported by Updraft")

    def partial(self, **kwargs):
        raise NotImplementedError("mapping a task group (@task_group ... .partial()) is not supported by Updraft")


def task_group(python_callable=None, **kwargs):
    """@task_group, @task_group(), or @task_group(group_id=..., tooltip=..., ...)."""
    if python_callable is not None and callable(python_callable) and not kwargs:
        return _TaskGroupFunction(python_callable, {})
    if python_callable is not None and not callable(python_callable):
        kwargs["group_id"] = python_callable

    def wrap(function):
        return _TaskGroupFunction(function, kwargs)

    return wrap
