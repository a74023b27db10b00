"""Run mode for sensors, short-circuit, @task.bash and get_current_context."""

import unittest

from support import NO_VALUE, parsed_tasks, run_task

DAG_FILE = "runtime_kinds.py"


class RuntimeKinds(unittest.TestCase):
    def test_serialized_kinds(self):
        tasks = parsed_tasks(DAG_FILE, "runtime_kinds")
        self.assertEqual(tasks["never_ready"]["airflow"]["operator"], "PythonSensor")
        self.assertNotIn("poke_interval", tasks["never_ready"])
        self.assertEqual(tasks["check"]["airflow"], {"operator": "ShortCircuitOperator", "fields": {"op_kwargs": {"flag": "{{ params.go }}"}}})
        self.assertIs(tasks["check"]["branch"], True)
        self.assertEqual(tasks["greet"]["airflow"]["operator"], "@task.bash")
        self.assertEqual(tasks["greet"]["depends_on"], ["check"])

    def test_sensor_times_out(self):
        ran = run_task(DAG_FILE, "runtime_kinds", "never_ready")
        self.assertEqual(ran.code, 98, ran)  # a sensor timeout is not retried
        self.assertIn("AirflowSensorTimeout", ran.stderr)

    def test_soft_fail_sensor_is_skipped(self):
        self.assertEqual(run_task(DAG_FILE, "runtime_kinds", "soft").code, 99)

    def test_time_delta_sensor_in_the_past_is_done(self):
        self.assertEqual(run_task(DAG_FILE, "runtime_kinds", "past").code, 0)

    def test_decorated_sensor_pushes_its_value(self):
        ran = run_task(DAG_FILE, "runtime_kinds", "ready_soon")
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, {"found": "ready_soon"})

    def test_short_circuit(self):
        down = ["greet", "where"]
        ran = run_task(DAG_FILE, "runtime_kinds", "check", fields={"op_kwargs": {"flag": "yes"}}, downstream=down)
        self.assertEqual(ran.return_value, down, ran)
        ran = run_task(DAG_FILE, "runtime_kinds", "check", fields={"op_kwargs": {"flag": ""}}, downstream=down)
        self.assertEqual(ran.return_value, [], ran)

    def test_task_bash(self):
        ran = run_task(DAG_FILE, "runtime_kinds", "greet")
        self.assertEqual(ran.code, 0, ran)
        self.assertIn("hello bob", ran.stdout)
        self.assertEqual(ran.return_value, "done-bob")

    def test_get_current_context(self):
        ran = run_task(DAG_FILE, "runtime_kinds", "where", params={"go": True})
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, ["where", "2024-01-02", "runtime_kinds", True])
        self.assertIsNot(ran.return_value, NO_VALUE)


if __name__ == "__main__":
    unittest.main()
