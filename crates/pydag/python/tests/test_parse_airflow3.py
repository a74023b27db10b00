"""Parsing and running an Airflow 3 style DAG file (airflow.sdk, TaskFlow, mapping,
override, branching, task groups, chain, cross_downstream, Params), a user's own
operator, and task groups with prefix_group_id=False and default_args."""

import unittest

from support import NO_VALUE, ParseServer, all_tasks, dag_doc, dag_path, run_task


class Airflow3Parse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ParseServer()
        _, result = cls.server.parse(dag_path("af3_taskflow.py"))
        cls.doc = dag_doc(result, "af3_taskflow")
        cls.tasks = all_tasks(cls.doc)
        _, cls.custom = cls.server.parse(dag_path("custom_op.py"))
        _, cls.groups = cls.server.parse(dag_path("groups.py"))

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_top_level(self):
        doc = self.doc
        self.assertEqual(doc["schedule"], "@daily")
        self.assertEqual(doc["start_date"], "2024-01-01T00:00:00+01:00")
        self.assertEqual(doc["timezone"], "Europe/Berlin")
        self.assertEqual(doc["params"], {"limit": {"default": 10, "type": "integer", "minimum": 1}, "label": "x"})
        self.assertNotIn("catchup", doc)

    def test_taskflow_dependencies_from_xcom_args(self):
        t = self.tasks
        self.assertEqual(t["numbers"]["airflow"], {"operator": "@task", "fields": {}})
        self.assertEqual(t["stats"]["depends_on"], ["numbers"])
        self.assertEqual(t["total"]["depends_on"], ["double"])
        self.assertEqual(t["pick"]["depends_on"], ["stats"])
        self.assertIs(t["pick"]["branch"], True)
        self.assertEqual(t["pick"]["airflow"]["operator"], "@task.branch")
        self.assertEqual(t["big"]["depends_on"], ["pick"])

    def test_mapping(self):
        self.assertEqual(self.tasks["double"]["expand"], {"x": "{{ ti.xcom_pull('numbers') }}"})
        self.assertEqual(self.tasks["double_literal"]["expand"], {"x": [10, 20]})
        self.assertEqual(self.tasks["double_literal"]["depends_on"], [])

    def test_repeated_calls_get_suffixed_ids(self):
        self.assertIn("double__1", self.tasks)
        self.assertIn("double__2", self.tasks)

    def test_task_group_decorator(self):
        self.assertEqual(self.tasks["post.format_it"]["depends_on"], ["total"])
        self.assertEqual(self.tasks["post.show"]["depends_on"], ["post.format_it"])

    def test_chain_and_cross_downstream(self):
        t = self.tasks
        self.assertEqual(t["b"]["depends_on"], ["a"])
        self.assertEqual(t["c"]["depends_on"], ["a"])
        self.assertEqual(t["d"]["depends_on"], ["b", "c"])
        self.assertEqual(t["e1"]["depends_on"], ["a", "double_literal"])
        self.assertEqual(t["e2"]["depends_on"], ["a", "double_literal"])

    def test_custom_operator_fields(self):
        tasks = all_tasks(dag_doc(self.custom, "custom_op"))
        self.assertEqual(tasks["query"]["airflow"], {
            "operator": "QueryOperator",
            "fields": {"sql": "select * from t where day = '{{ ds }}'", "targets": ["a", "{{ ds_nodash }}", 3]},
        })
        self.assertEqual(tasks["skipper"]["airflow"]["fields"], {})

    def test_groups_default_args_and_flat_group(self):
        doc = dag_doc(self.groups, "groups")
        tasks = all_tasks(doc)
        self.assertEqual(sorted(tasks), ["b", "outer.a", "outer.inner.c", "outer.inner.start", "start"])
        self.assertEqual(tasks["start"]["retries"], 1)
        self.assertEqual(tasks["outer.a"]["retries"], 3)
        self.assertEqual(tasks["b"]["retries"], 5)
        self.assertEqual(tasks["outer.a"]["pool"], "etl")
        self.assertEqual(tasks["outer.a"]["bash"], "echo a")
        self.assertEqual(tasks["outer.a"]["env"], {"X": "1"})
        self.assertEqual(tasks["outer.a"]["depends_on"], ["start"])
        self.assertEqual(tasks["b"]["depends_on"], ["outer.a"])
        # env without append_env replaces the environment: not native.
        self.assertEqual(tasks["outer.inner.c"]["airflow"]["operator"], "BashOperator")
        # A top-level upstream whose id reads as a sibling's is written as an edge.
        self.assertEqual(tasks["outer.inner.start"]["depends_on"], ["b"])
        self.assertEqual(doc["edges"], ["start >> outer.inner.start"])


class Airflow3Run(unittest.TestCase):
    def test_multiple_outputs(self):
        ran = run_task("af3_taskflow.py", "af3_taskflow", "stats", xcoms=[("numbers", -1, "return_value", [1, 2, 3])])
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, {"total": 6, "count": 3})
        self.assertEqual(ran.xcoms, [{"key": "total", "value": 6}, {"key": "count", "value": 3}])

    def test_mapped_instance_gets_its_value(self):
        ran = run_task("af3_taskflow.py", "af3_taskflow", "double", map_index=1, expand={"x": 2})
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, 6)

    def test_pulling_a_mapped_task_gives_a_list(self):
        xcoms = [("double", i, "return_value", v) for i, v in enumerate([3, 6, 9])]
        ran = run_task("af3_taskflow.py", "af3_taskflow", "total", xcoms=xcoms)
        self.assertEqual(ran.return_value, 18, ran)

    def test_branch_from_xcom_key(self):
        ran = run_task("af3_taskflow.py", "af3_taskflow", "pick", xcoms=[("stats", -1, "count", 3)])
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, "big")

    def test_custom_operator_with_rendered_fields(self):
        fields = {"sql": "select * from t where day = '2024-01-02'", "targets": ["a", "20240102", 3]}
        ran = run_task("custom_op.py", "custom_op", "query", fields=fields)
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, {"sql": fields["sql"], "targets": fields["targets"], "ds": "2024-01-02"})

    def test_skip_exception_exits_99(self):
        ran = run_task("custom_op.py", "custom_op", "skipper")
        self.assertEqual(ran.code, 99, ran)
        self.assertIs(ran.return_value, NO_VALUE)

    def test_returning_an_object_fails_naming_its_type(self):
        ran = run_task("custom_op.py", "custom_op", "returns_object")
        self.assertEqual(ran.code, 1, ran)
        self.assertIn(
            "TypeError: the return value of task returns_object is a Opaque, which is not JSON-serializable",
            ran.stderr,
        )

    def test_raising_callable_prints_traceback(self):
        ran = run_task("custom_op.py", "custom_op", "raises")
        self.assertEqual(ran.code, 1, ran)
        self.assertIn("Traceback (most recent call last)", ran.stderr)
        self.assertIn("custom_op.py", ran.stderr)
        self.assertIn("RuntimeError: kaboom", ran.stderr)


if __name__ == "__main__":
    unittest.main()
