"""Runs one Updraft `python` task try.

The worker starts `<interpreter> -u <this file> <spec.json>`. The spec holds the task's code
or file, the callable to call, its rendered kwargs and the task context. A callable's return
value is written as JSON to $UPDRAFT_RETURN_VALUE_FILE (nothing when it returns None), and
`ti.xcom_push` appends `{"key": K, "value": V}` lines to $UPDRAFT_XCOM_FILE, the same file
bash tasks use.

Exit codes: 0 success, 99 skipped (sys.exit(99), or raising an exception class named
AirflowSkipException or UpdraftSkip), anything else failure.
"""

import datetime
import inspect
import json
import os
import sys
import traceback
import types

SKIP_EXIT_CODE = 99
SKIP_EXCEPTIONS = ("AirflowSkipException", "UpdraftSkip")


class AttrDict(dict):
    """A dict whose keys are also attributes: `dag_run.conf` and `dag_run["conf"]` both work."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def parse_datetime(text):
    if text is None:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


class TaskInstance:
    """The `ti` of the context: identity, and XCom push and pull."""

    def __init__(self, spec, xcoms):
        self.dag_id = spec["dag_id"]
        self.task_id = spec["task_id"]
        self.run_id = spec["run_id"]
        self.try_number = spec["try_number"]
        self.map_index = spec["map_index"]
        self._xcoms = xcoms

    def xcom_push(self, key, value):
        line = json.dumps({"key": key, "value": value})
        with open(os.environ["UPDRAFT_XCOM_FILE"], "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def xcom_pull(self, task_ids=None, key="return_value", map_indexes=None, default=None):
        """As in templates: one id gives its value (a mapped task: the list of its values),
        a list of ids gives a list in that order, and `default` when nothing was pushed."""
        if task_ids is None:
            task_ids = self.task_id
        if isinstance(task_ids, (list, tuple)):
            return [self._pull_one(t, key, map_indexes, default) for t in task_ids]
        return self._pull_one(task_ids, key, map_indexes, default)

    def _pull_one(self, task_id, key, map_indexes, default):
        found = [x for x in self._xcoms if x["task_id"] == task_id and x["key"] == key]
        if map_indexes is not None:
            wanted = map_indexes if isinstance(map_indexes, (list, tuple)) else [map_indexes]
            found = [x for x in found if x["map_index"] in wanted]
            if not isinstance(map_indexes, (list, tuple)):
                return found[0]["value"] if found else default
            return [x["value"] for x in sorted(found, key=lambda x: x["map_index"])]
        if any(x["map_index"] >= 0 for x in found):
            return [x["value"] for x in sorted(found, key=lambda x: x["map_index"])]
        return found[0]["value"] if found else default

    def __repr__(self):
        return "<TaskInstance %s.%s %s try %s>" % (
            self.dag_id,
            self.task_id,
            self.run_id,
            self.try_number,
        )


def build_context(spec):
    ctx = dict(spec["context"])
    for name in ("logical_date", "data_interval_start", "data_interval_end"):
        ctx[name] = parse_datetime(ctx.get(name))
    dag_run = AttrDict(ctx["dag_run"])
    for name in ("logical_date", "data_interval_start", "data_interval_end"):
        dag_run[name] = parse_datetime(dag_run.get(name))
    ctx["dag_run"] = dag_run
    ctx["params"] = AttrDict(ctx.get("params") or {})
    ti = TaskInstance(spec, spec.get("xcoms") or [])
    ctx["ti"] = ti
    ctx["task_instance"] = ti
    ctx["dag"] = AttrDict({"dag_id": spec["dag_id"]})
    ctx["task"] = AttrDict({"task_id": spec["task_id"]})
    return ctx


def load_module(spec):
    """Execute the task's code or file in a fresh module and return it."""
    module = types.ModuleType("updraft_task")
    if spec.get("file"):
        path = spec["file"]
        with open(path, encoding="utf-8") as f:
            source = f.read()
        filename = path
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    else:
        source = spec.get("code") or ""
        filename = "<task %s>" % spec["task_id"]
    module.__file__ = filename
    # Without a callable the code is the task itself, run as a script would be.
    if not spec.get("callable"):
        module.__name__ = "__main__"
    sys.modules[module.__name__] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def call(fn, kwargs, context):
    """Call `fn` with `kwargs` plus the context names its signature asks for."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn(**kwargs)
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    args = {}
    for name, value in context.items():
        if takes_all or name in params:
            args[name] = value
    # Explicit kwargs win over context names of the same name.
    args.update(kwargs)
    return fn(**args)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    context = build_context(spec)
    sys.argv = [spec.get("file") or "-c"]
    module = load_module(spec)
    name = spec.get("callable")
    if not name:
        return
    fn = getattr(module, name, None)
    if fn is None or not callable(fn):
        print("callable %r is not defined by the task's code" % name, file=sys.stderr)
        sys.exit(1)
    result = call(fn, spec.get("kwargs") or {}, context)
    if result is None:
        return
    try:
        text = json.dumps(result)
    except (TypeError, ValueError) as err:
        print("the return value of %s() is not JSON serializable: %s" % (name, err), file=sys.stderr)
        sys.exit(1)
    with open(os.environ["UPDRAFT_RETURN_VALUE_FILE"], "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as err:
        if type(err).__name__ in SKIP_EXCEPTIONS:
            print("task skipped: %s" % (err,), file=sys.stderr)
            sys.exit(SKIP_EXIT_CODE)
        traceback.print_exc()
        sys.exit(1)
