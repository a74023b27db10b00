"""Airflow 3.3's rules where dag-format.md differs (docs/airflow-differences.md), on the
Python side of an Airflow file's tasks: `ti.xcom_pull`, a mapped XComArg, BashOperator's
return value."""

import contextlib
import io
import os
import sys
import unittest

# The package under test, ahead of any installed Airflow.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from airflow._updraft.context import TaskInstance, XComStore  # noqa: E402
from airflow._updraft.operators import run_bash  # noqa: E402
from airflow._updraft.xcomarg import XComArg  # noqa: E402


def xcom(task_id, map_index, value, key="return_value"):
    return {"task_id": task_id, "map_index": map_index, "key": key, "value": value}


# `extract` pushed two keys, `mapped` has two instances (pushed out of order), `one` is a
# mapped task with a single instance, and the calling task `report` pushed its own value.
XCOMS = [
    xcom("extract", -1, {"rows": 5}),
    xcom("extract", -1, 1500, key="row_count"),
    xcom("mapped", 1, "b"),
    xcom("mapped", 0, "a"),
    xcom("one", 0, "only"),
    xcom("report", -1, "mine"),
]


def task_instance(task_id="report", map_index=-1):
    spec = {"dag_id": "d", "task_id": task_id, "run_id": "manual__1", "try_number": 1, "map_index": map_index}
    return TaskInstance(spec, None, XComStore(XCOMS, task_id, map_index), None)


class FakeOperator:
    def __init__(self, task_id, is_mapped):
        self.task_id = task_id
        self.is_mapped = is_mapped


class XComPull(unittest.TestCase):
    def check(self, cases, ti=None):
        ti = ti or task_instance()
        for kwargs, expected in cases:
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                self.assertEqual(ti.xcom_pull(**kwargs), expected)

    def test_one_task_without_map_indexes(self):
        self.check([
            ({"task_ids": "extract"}, {"rows": 5}),
            ({"task_ids": "extract", "key": "row_count"}, 1500),
            ({"task_ids": "mapped"}, ["a", "b"]),
            # A lone mapped value comes back bare (dag-format: a list of one).
            ({"task_ids": "one"}, "only"),
            ({}, "mine"),
            ({"task_ids": "missing"}, None),
        ])

    def test_default_is_ignored_without_map_indexes(self):
        # Airflow 3.3 appends None for a task that pushed nothing, whatever `default` says.
        self.check([
            ({"task_ids": "missing", "default": "fallback"}, None),
            ({"task_ids": "extract", "key": "nope", "default": 0}, None),
            ({"task_ids": ["extract", "missing"], "default": 0}, [{"rows": 5}, None]),
        ])

    def test_a_list_of_ids_flattens_every_value(self):
        self.check([
            ({"task_ids": ["extract", "mapped"]}, [{"rows": 5}, "a", "b"]),
            ({"task_ids": ["one"]}, ["only"]),
            ({"task_ids": ["missing"]}, [None]),
        ])

    def test_explicit_map_indexes(self):
        self.check([
            ({"task_ids": "mapped", "map_indexes": 1}, "b"),
            ({"task_ids": "mapped", "map_indexes": 7, "default": "-"}, "-"),
            ({"task_ids": "mapped", "map_indexes": [1, 7], "default": "-"}, ["b", "-"]),
            ({"task_ids": ["mapped", "one"], "map_indexes": 0}, ["a", "only"]),
            # None means the unmapped value (map index -1): a mapped task has none.
            ({"task_ids": "extract", "map_indexes": None}, {"rows": 5}),
            ({"task_ids": "one", "map_indexes": None, "default": "d"}, "d"),
        ])

    def test_a_mapped_instance_pulling_its_own_task_gets_every_instance(self):
        self.check([({}, ["a", "b"]), ({"map_indexes": 1}, "b")], task_instance("mapped", 1))

    def test_what_this_try_pushed_is_pulled_too(self):
        ti = task_instance("late")
        os.environ["UPDRAFT_XCOM_FILE"] = os.devnull
        try:
            ti.xcom_push("return_value", "new")
        finally:
            del os.environ["UPDRAFT_XCOM_FILE"]
        self.assertEqual(ti.xcom_pull(), "new")


class MappedXComArg(unittest.TestCase):
    """Airflow resolves a mapped task's XComArg to the sequence of its values, so a value
    passed on from a mapped task stays a list even of one, unlike `xcom_pull`."""

    def test_resolve(self):
        context = {"ti": task_instance()}
        self.assertEqual(XComArg(FakeOperator("one", True)).resolve(context), ["only"])
        self.assertEqual(XComArg(FakeOperator("mapped", True)).resolve(context), ["a", "b"])
        self.assertEqual(XComArg(FakeOperator("missing", True)).resolve(context), [])
        self.assertEqual(XComArg(FakeOperator("extract", False)).resolve(context), {"rows": 5})
        self.assertIsNone(XComArg(FakeOperator("missing", False)).resolve(context))

    def test_templates(self):
        mapped = XComArg(FakeOperator("one", True))
        self.assertEqual(mapped.template(), "{{ ti.xcom_pull(task_ids=['one'], key='return_value') | reject('none') | list }}")
        # In a string it is an xcom_pull, as Airflow renders an XComArg.
        self.assertEqual(str(mapped), "{{ ti.xcom_pull('one') }}")
        self.assertEqual(XComArg(FakeOperator("extract", False)).template(), "{{ ti.xcom_pull('extract') }}")


class BashReturnValue(unittest.TestCase):
    """BashOperator run in Python (with callbacks, an output_processor, …) returns what
    Airflow's does: the last line of stdout and stderr merged."""

    def check(self, command, expected):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code, last = run_bash(command, dict(os.environ), None)
        self.assertEqual((code, last), (0, expected), out.getvalue())
        return out.getvalue()

    def test_last_line_of_both_streams(self):
        echoed = self.check("echo first; echo to-stderr >&2", "to-stderr")
        self.assertIn("to-stderr", echoed)
        self.check("echo last; echo ''", "")
        self.check("printf 'padded  \\n'", "padded")
        self.check("true", "")


if __name__ == "__main__":
    unittest.main()
