"""TaskFlow: @task and its variants (python, branch, short_circuit, bash, sensor).

Calling a decorated function inside a DAG makes an operator (ids deduplicated as Airflow
does: `name`, `name__1`, …) and returns an XComArg for its result; `.override(...)`
changes operator arguments, `.partial(...).expand(...)` / `.expand(...)` map it.
"""

import functools
import inspect
import re
import typing

from . import state
from .baseoperator import MappedArgument, check_expand_values
from .operators import BashOperator, BranchMixIn, PythonOperator, ShortCircuitOperator, context_kwargs
from .sensors import PythonSensor
from .xcomarg import XComArg

# Names of the task context: a TaskFlow function may declare them without the caller
# passing them.
CONTEXT_NAMES = frozenset(
    """conf dag dag_run data_interval_end data_interval_start ds ds_nodash execution_date
    expanded_ti_count inlets inlet_events logical_date macros map_index_template outlets
    outlet_events params prev_data_interval_start_success prev_data_interval_end_success
    prev_start_date_success prev_end_date_success reason run_id task task_instance
    task_instance_key_str task_reschedule_count templates_dict test_mode ti
    triggering_asset_events ts ts_nodash ts_nodash_with_tz var conn try_number map_index
    exception""".split()
)


class DecoratedOperator:
    """Marks operators made by a TaskFlow decorator."""

    custom_operator_name = "@task"


class _PythonDecoratedOperator(DecoratedOperator, PythonOperator):
    custom_operator_name = "@task"

    def __init__(self, *, python_callable, op_args=None, op_kwargs=None, multiple_outputs=False, **kwargs):
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            multiple_outputs=multiple_outputs,
            **kwargs
        )


class _BranchPythonDecoratedOperator(_PythonDecoratedOperator, BranchMixIn):
    custom_operator_name = "@task.branch"
    branch_kind = "branch"

    def execute(self, context):
        return self.do_branch(context, super().execute(context))


class _ShortCircuitDecoratedOperator(DecoratedOperator, ShortCircuitOperator):
    custom_operator_name = "@task.short_circuit"

    def __init__(self, *, python_callable, op_args=None, op_kwargs=None, multiple_outputs=False, **kwargs):
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)


class _BashDecoratedOperator(DecoratedOperator, BashOperator):
    custom_operator_name = "@task.bash"
    template_fields = ("op_args", "op_kwargs", "env", "cwd")

    def __init__(self, *, python_callable, op_args=None, op_kwargs=None, multiple_outputs=False, **kwargs):
        kwargs.pop("bash_command", None)
        super().__init__(bash_command="", **kwargs)
        self.python_callable = python_callable
        self.op_args = op_args or ()
        self.op_kwargs = op_kwargs or {}

    def execute(self, context):
        context.update(self.op_kwargs)
        kwargs = context_kwargs(self.python_callable, list(self.op_args), context)
        command = self.python_callable(*self.op_args, **kwargs)
        if not isinstance(command, str) or not command.strip():
            raise TypeError("The returned value from the TaskFlow callable must be a non-empty string.")
        if "{{" in command or "{%" in command:
            raise ValueError(
                "the command returned by @task.bash %s contains a Jinja template, which Updraft "
                "cannot render at run time: build the command in Python (context values such "
                "as ds are available as the function's arguments)" % self.task_id
            )
        self.bash_command = command
        return BashOperator.execute(self, context)


class _DecoratedSensorOperator(DecoratedOperator, PythonSensor):
    custom_operator_name = "@task.sensor"

    def __init__(self, *, python_callable, op_args=None, op_kwargs=None, multiple_outputs=False, **kwargs):
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, **kwargs)


def _returns_dict(function):
    try:
        hints = typing.get_type_hints(function)
        annotation = hints.get("return", inspect.Signature.empty)
    except Exception:
        annotation = inspect.signature(function).return_annotation
    if annotation in (dict, typing.Dict):
        return True
    return getattr(annotation, "__origin__", None) is dict


def unique_task_id(dag, group, task_id):
    """Airflow's rule: a TaskFlow id already used in the DAG gets `__N`, one above the
    highest N in use."""
    full = group.child_id(task_id) if group is not None else task_id
    if dag is None or full not in dag.task_dict:
        return task_id
    prefix = re.split(r"__\d+$", full)[0]
    suffixes = [0]
    for existing in dag.task_dict:
        match = re.match(r"^%s__(\d+)$" % re.escape(prefix), existing)
        if match:
            suffixes.append(int(match.group(1)))
    core = re.split(r"__\d+$", task_id)[0]
    return "%s__%d" % (core, max(suffixes) + 1)


class _TaskDecorator:
    """A decorated function: call it (in a DAG) to make a task."""

    def __init__(self, function, operator_class, kwargs, multiple_outputs=None):
        self.function = function
        self.operator_class = operator_class
        self.kwargs = kwargs
        if multiple_outputs is None:
            multiple_outputs = _returns_dict(function)
        self.multiple_outputs = multiple_outputs
        functools.update_wrapper(self, function)

    def _check_call(self, args, kwargs):
        signature = inspect.signature(self.function)
        params = [
            p.replace(default=None) if p.name in CONTEXT_NAMES and p.default is p.empty else p
            for p in signature.parameters.values()
        ]
        try:
            signature.replace(parameters=params).bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError("%s(): %s" % (self.function.__name__, err)) from None

    def _make(self, op_args, op_kwargs, extra=None):
        options = dict(self.kwargs)
        options.update(extra or {})
        dag = options.get("dag") or state.current_dag()
        group = options.get("task_group") or (state.current_group(dag) if dag else None)
        task_id = options.pop("task_id", None) or self.function.__name__
        task_id = unique_task_id(dag, group, task_id)
        multiple_outputs = options.pop("multiple_outputs", self.multiple_outputs)
        return self.operator_class(
            task_id=task_id,
            python_callable=self.function,
            op_args=op_args,
            op_kwargs=op_kwargs,
            multiple_outputs=multiple_outputs,
            **options
        )

    def __call__(self, *args, **kwargs):
        self._check_call(args, kwargs)
        op = self._make(list(args), kwargs)
        return XComArg(op)

    def override(self, **kwargs):
        merged = dict(self.kwargs)
        merged.update(kwargs)
        multiple_outputs = merged.pop("multiple_outputs", self.multiple_outputs)
        return _TaskDecorator(self.function, self.operator_class, merged, multiple_outputs)

    def partial(self, **kwargs):
        return _TaskPartial(self, kwargs)

    def expand(self, **mapped):
        return _TaskPartial(self, {}).expand(**mapped)

    def expand_kwargs(self, *args, **kwargs):
        raise NotImplementedError("expand_kwargs() is not supported by Updraft")


class _TaskPartial:
    def __init__(self, decorator, kwargs):
        self.decorator = decorator
        self.kwargs = kwargs

    def expand(self, **mapped):
        if not mapped:
            raise TypeError("expand() needs at least one argument to map over")
        for name in mapped:
            if name in self.kwargs:
                raise TypeError("argument %r is given to both partial() and expand()" % name)
        check_expand_values(mapped, "%s" % self.decorator.function.__name__)
        op_kwargs = dict(self.kwargs)
        for name, value in mapped.items():
            op_kwargs[name] = MappedArgument(name, value)
        self.decorator._check_call((), op_kwargs)
        op = self.decorator._make([], op_kwargs)
        op._updraft_expand = dict(mapped)
        for value in mapped.values():
            op._link_xcomargs(value)
        return XComArg(op)

    def expand_kwargs(self, *args, **kwargs):
        raise NotImplementedError("expand_kwargs() is not supported by Updraft")


def _decorator_factory(operator_class):
    def decorate(python_callable=None, multiple_outputs=None, **kwargs):
        if python_callable is not None:
            return _TaskDecorator(python_callable, operator_class, kwargs, multiple_outputs)

        def wrap(function):
            return _TaskDecorator(function, operator_class, kwargs, multiple_outputs)

        return wrap

    return decorate


class TaskDecoratorCollection:
    """`task`: `@task`, `@task(...)`, and `@task.<kind>`."""

    python = staticmethod(_decorator_factory(_PythonDecoratedOperator))
    branch = staticmethod(_decorator_factory(_BranchPythonDecoratedOperator))
    short_circuit = staticmethod(_decorator_factory(_ShortCircuitDecoratedOperator))
    bash = staticmethod(_decorator_factory(_BashDecoratedOperator))
    sensor = staticmethod(_decorator_factory(_DecoratedSensorOperator))

    def __call__(self, python_callable=None, multiple_outputs=None, **kwargs):
        return self.python(python_callable, multiple_outputs, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotImplementedError("@task.%s is not supported by Updraft" % name)


task = TaskDecoratorCollection()
