"""Run mode: one try of one task of an Airflow DAG file.

The spec (the worker's Python runner spec plus an `airflow` block) gives the file's source,
the template fields already rendered by the worker, this map index's expanded values and
the run's XComs. The file is executed as a fresh module, the operator is found, its fields
are set, and `pre_execute`, `execute` and `post_execute` run with Airflow's context. The
task's own callbacks (on_execute, then on_success, or on_retry/on_failure) run in this
process, as Airflow 3 runs them in the task's process. Before a failure or retry callback
runs, its name is written to $UPDRAFT_CALLBACKS_RAN_FILE (when set): a process killed before
it got there leaves no such line, and the worker then runs the callback itself, in callback
mode, so that it runs exactly once.

With `callback` set in the spec only that callback runs: the task's (after a kill), or the
DAG's when task_id is null (when a run ended), with the context of the run's last task
instance (`callback.task_id`) as Airflow 3 gives it, plus `reason` and `exception`.

Exit codes: 0 success, 99 skipped, 1 failed, 98 failed with no retry (AirflowFailException,
a sensor's timeout).
"""

import json
import os
import signal
import sys
import traceback

from . import state
from .context import NotSerializable, build_context, to_json
from .decorators import DecoratedOperator
from .exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTerminated,
)
from .xcomarg import RETURN_KEY, resolve_xcomargs

SKIPPED = 99
FAILED = 1
# Failed in a way no retry may fix; the worker fails the task for good.
FAILED_NO_RETRY = 98

# The environment variable naming the file where a try's process records each failure or
# retry callback it is about to run.
CALLBACKS_RAN_ENV = "UPDRAFT_CALLBACKS_RAN_FILE"


class TaskSetupError(Exception):
    """The spec does not match the DAG file (missing DAG or task)."""


def merge_rendered(original, rendered, native):
    """The operator's value with the worker's rendering of its strings put in place.

    Only strings are rendered; other values (XComArgs, objects) stay as they were. Jinja
    prints a non-string result as Python does, unless the DAG renders native objects."""
    if isinstance(original, str):
        if isinstance(rendered, str) or native:
            return rendered
        return str(rendered)
    if isinstance(original, (list, tuple)) and isinstance(rendered, list) and len(rendered) == len(original):
        items = [merge_rendered(o, r, native) for o, r in zip(original, rendered)]
        return type(original)(items) if isinstance(original, tuple) else items
    if isinstance(original, dict) and isinstance(rendered, dict):
        return {k: merge_rendered(v, rendered.get(str(k), v), native) for k, v in original.items()}
    return original


def find_dag(module, dag_id):
    from .loader import collect_dags

    for dag in collect_dags(module):
        if dag.dag_id == dag_id:
            return dag
    raise TaskSetupError("the DAG file no longer defines DAG %r" % dag_id)


def prepare_task(spec, dag):
    task_id = spec["task_id"]
    if task_id not in dag.task_dict:
        raise TaskSetupError("DAG %r no longer has task %r" % (dag.dag_id, task_id))
    op = dag.task_dict[task_id]
    extra = spec.get("airflow") or {}
    native = bool(getattr(dag, "render_template_as_native_obj", False))
    for name, rendered in (extra.get("fields") or {}).items():
        setattr(op, name, merge_rendered(getattr(op, name, None), rendered, native))
    expanded = extra.get("expand") or {}
    if op.is_mapped:
        for name in op._updraft_expand:
            if name not in expanded:
                raise TaskSetupError("no value was given for the mapped argument %r" % name)
            if isinstance(op, DecoratedOperator):
                op.op_kwargs = dict(op.op_kwargs)
                op.op_kwargs[name] = expanded[name]
            else:
                setattr(op, name, expanded[name])
    return op


def resolve_fields(op, context):
    for name in op.template_fields:
        if hasattr(op, name):
            setattr(op, name, resolve_xcomargs(getattr(op, name), context))


def callbacks_of(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def mark_callbacks_ran(kind):
    """Record, before they run, that this process runs its `kind` callbacks, so that nobody
    runs them again after this process ends (see the module docstring)."""
    path = os.environ.get(CALLBACKS_RAN_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(kind + "\n")
    except OSError as err:
        print("could not record that %s ran: %s" % (kind, err), file=sys.stderr)


def run_callbacks(kind, value, context):
    """Call each callback; a failing one is reported and never changes the outcome."""
    ok = True
    for callback in callbacks_of(value):
        name = getattr(callback, "__name__", repr(callback))
        print("Running %s %s" % (kind, name))
        try:
            callback(context)
        except Exception:
            ok = False
            print("%s %s failed:" % (kind, name), file=sys.stderr)
            traceback.print_exc()
    return ok


def write_return_value(op, result, spec):
    branch_kind = getattr(op, "branch_kind", None)
    if branch_kind == "short_circuit":
        result = list((spec.get("airflow") or {}).get("downstream") or []) if result else []
    elif branch_kind != "branch":
        if not op.do_xcom_push:
            return
        if op.multiple_outputs and result is not None:
            if not isinstance(result, dict):
                raise TypeError(
                    "Returned output was type %s expected dictionary for multiple_outputs" % type(result).__name__
                )
            for key, value in result.items():
                if not isinstance(key, str):
                    raise TypeError("Returned dictionary keys must be strings when using multiple_outputs, found %r (%s) instead" % (key, type(key).__name__))
            context = state.context_stack[-1]
            for key, value in result.items():
                context["ti"].xcom_push(key, value)
        if result is None:
            return
    text = to_json(result, "the return value of task %s" % op.task_id)
    path = os.environ.get("UPDRAFT_RETURN_VALUE_FILE")
    if not path:
        raise AirflowException("UPDRAFT_RETURN_VALUE_FILE is not set: the return value cannot be written")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _terminated(signum, frame):
    raise AirflowTaskTerminated("Task received SIGTERM signal")


def execute_task(op, context, spec):
    """Run the try; returns the exit code."""
    state.context_stack.append(context)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        run_callbacks("on_execute_callback", op.on_execute_callback, context)
        try:
            resolve_fields(op, context)
            op.pre_execute(context)
            result = op.execute(context)
            op.post_execute(context, result)
            write_return_value(op, result, spec)
        except AirflowTaskTerminated:
            try:
                op.on_kill()
            except Exception:
                traceback.print_exc()
            raise
    except AirflowSkipException as exc:
        print("Skipping task %s: %s" % (op.task_id, exc) if str(exc) else "Skipping task %s" % op.task_id)
        return SKIPPED
    except SystemExit as exc:
        if exc.code in (None, 0):
            run_callbacks("on_success_callback", op.on_success_callback, context)
            return 0
        if exc.code == SKIPPED:
            print("Skipping task %s (exit code 99)" % op.task_id)
            return SKIPPED
        return _failed(op, context, spec, exc)
    except BaseException as exc:
        return _failed(op, context, spec, exc)
    run_callbacks("on_success_callback", op.on_success_callback, context)
    return 0


def _failed(op, context, spec, exc):
    if isinstance(exc, NotSerializable):
        print("TypeError: %s" % exc, file=sys.stderr)
    elif isinstance(exc, AirflowFailException):
        print("AirflowFailException: %s" % exc, file=sys.stderr)
        traceback.print_exc()
    else:
        traceback.print_exc()
    context["exception"] = exc
    context["reason"] = "task_failure"
    try_number = spec.get("try_number") or 1
    no_retry = isinstance(exc, (AirflowFailException, AirflowSensorTimeout))
    if not no_retry and try_number <= (op.retries or 0):
        mark_callbacks_ran("on_retry_callback")
        run_callbacks("on_retry_callback", op.on_retry_callback, context)
    else:
        mark_callbacks_ran("on_failure_callback")
        run_callbacks("on_failure_callback", op.on_failure_callback, context)
    return FAILED_NO_RETRY if no_retry else FAILED


def run_callback_only(spec, dag, module):
    """`callback` in the spec: call that callback (the task's, or the DAG's when task_id is
    null) with the context plus `reason` and `exception`; exit 1 if one of them raised.

    A DAG's callback gets Airflow 3's DAG-callback context: the template context of the run's
    last task instance (`callback.task_id`, when the run has one and the DAG still has its
    task), with `reason` ("success", "task_failure", "timed_out") and, when the run failed,
    `exception` saying why."""
    callback = spec["airflow"]["callback"]
    kind = callback.get("kind")
    exception = callback.get("exception")
    if spec.get("task_id"):
        op = prepare_task(spec, dag)
        holder = op
        context = build_context(spec, dag, op)
        context["exception"] = exception
        what = "task %s" % op.task_id
    else:
        holder = dag
        last = callback.get("task_id")
        task = dag.task_dict.get(last) if last else None
        context = build_context(dict(spec, task_id=last if task is not None else None), dag, task)
        if exception is not None:
            context["exception"] = exception
        what = "DAG %s" % dag.dag_id
    context["reason"] = callback.get("reason") or kind
    value = getattr(holder, kind, None) if kind else None
    if not callbacks_of(value):
        print("%s has no %s" % (what, kind))
        return 0
    state.context_stack.append(context)
    ok = run_callbacks(kind, value, context)
    print("%s of %s %s" % (kind, what, "done" if ok else "failed"))
    return 0 if ok else FAILED


def set_try_state(extra):
    """Put the spec's variables, connections and SMTP settings where the package reads them."""
    state.mode = "run"
    state.variables = dict(extra.get("variables") or {})
    state.connections = dict(extra.get("connections") or {})
    state.smtp = extra.get("smtp")


def configure_logging():
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s - %(message)s")


def load_module(extra):
    """Execute the DAG file's stored source (the `airflow` block of a spec) as a module."""
    from .loader import load_dag_file

    fileloc = extra.get("fileloc") or ""
    sys.argv = [fileloc]
    return load_dag_file(fileloc, extra.get("dags_folder"), extra.get("source"))


def report_load_failure(exc):
    """Print why loading the DAG file failed, for the try's log."""
    if isinstance(exc, SystemExit):
        print("the DAG file called sys.exit(%s) while loading" % ("" if exc.code is None else exc.code), file=sys.stderr)
    else:
        print("loading the DAG file failed:", file=sys.stderr)
        traceback.print_exception(type(exc), exc, exc.__traceback__)


def run_loaded(spec, module):
    """One try (or one callback) of `spec` with the DAG file already loaded as `module`."""
    set_try_state(spec.get("airflow") or {})
    try:
        dag = find_dag(module, spec["dag_id"])
        if (spec.get("airflow") or {}).get("callback"):
            return run_callback_only(spec, dag, module)
        op = prepare_task(spec, dag)
    except TaskSetupError as exc:
        print(str(exc), file=sys.stderr)
        return FAILED
    except BaseException:
        print("setting up the task failed:", file=sys.stderr)
        traceback.print_exc()
        return FAILED
    context = build_context(spec, dag, op)
    return execute_task(op, context, spec)


def run(spec_path):
    """Cold run mode: load the file, then run the try."""
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    set_try_state(spec.get("airflow") or {})
    configure_logging()
    try:
        module = load_module(spec.get("airflow") or {})
    except BaseException as exc:
        report_load_failure(exc)
        return FAILED
    return run_loaded(spec, module)
