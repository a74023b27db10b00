"""Python callbacks: the names serialized for DAGs and tasks, the record a failing try
leaves before its failure callbacks run, and callback mode for tasks and DAGs."""

import os
import tempfile
import unittest

from support import parsed_tasks, run_task, ParseServer, dag_doc, dag_path

DAG_FILE = "callbacks.py"


class Serialized(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        server = ParseServer()
        try:
            _, cls.result = server.parse(dag_path(DAG_FILE))
        finally:
            server.close()

    def test_dag_callbacks_from_dag_arguments_and_the_decorator(self):
        self.assertEqual(dag_doc(self.result, "classic_callbacks")["airflow"], {"callbacks": ["on_failure_callback"]})
        self.assertEqual(dag_doc(self.result, "taskflow_callbacks")["airflow"], {"callbacks": ["on_success_callback"]})

    def test_task_callbacks_from_the_task_and_default_args(self):
        tasks = parsed_tasks(DAG_FILE, "classic_callbacks")
        self.assertEqual(tasks["fails"]["airflow"]["callbacks"], ["on_failure_callback", "on_retry_callback"])
        # Set to None on the task, the default is overridden: no callbacks left.
        self.assertNotIn("callbacks", tasks["quiet"]["airflow"])
        self.assertNotIn("callbacks", parsed_tasks(DAG_FILE, "taskflow_callbacks")["hello"]["airflow"])


class Recorded(unittest.TestCase):
    def run_marked(self, try_number):
        with tempfile.TemporaryDirectory() as tmp:
            mark = os.path.join(tmp, "ran")
            ran = run_task(DAG_FILE, "classic_callbacks", "fails", try_number=try_number,
                           env={"UPDRAFT_CALLBACKS_RAN_FILE": mark})
            with open(mark, encoding="utf-8") as f:
                return ran, f.read()

    def test_a_failing_try_records_its_callback_before_running_it(self):
        ran, mark = self.run_marked(try_number=1)
        self.assertEqual(ran.code, 1, ran)
        self.assertEqual(mark, "on_retry_callback\n")
        self.assertIn("retrying: reason=task_failure exception=the data is bad", ran.stdout)
        ran, mark = self.run_marked(try_number=2)
        self.assertEqual(mark, "on_failure_callback\n")
        self.assertIn("task_failed: reason=task_failure exception=the data is bad", ran.stdout)

    def test_a_successful_try_records_nothing(self):
        with tempfile.TemporaryDirectory() as tmp:
            mark = os.path.join(tmp, "ran")
            ran = run_task(DAG_FILE, "taskflow_callbacks", "hello", env={"UPDRAFT_CALLBACKS_RAN_FILE": mark})
            self.assertEqual(ran.code, 0, ran)
            self.assertFalse(os.path.exists(mark))


class CallbackMode(unittest.TestCase):
    def test_a_tasks_callback_after_a_kill(self):
        ran = run_task(DAG_FILE, "classic_callbacks", "fails", callback={
            "kind": "on_failure_callback", "exception": "killed by SIGKILL", "reason": "task_failure"})
        self.assertEqual(ran.code, 0, ran)
        self.assertIn("task_failed: reason=task_failure exception=killed by SIGKILL run_id=scheduled__2024-01-02T00:00:00+00:00 "
                      "ds=2024-01-02 dag=classic_callbacks ti=fails", ran.stdout)
        self.assertNotIn("the data is bad", ran.stdout + ran.stderr, "the task itself did not run")

    def test_a_dags_failure_callbacks_all_run_with_the_last_task_instance(self):
        ran = run_task(DAG_FILE, "classic_callbacks", None, callback={
            "kind": "on_failure_callback", "exception": "failed tasks: fails", "reason": "task_failure",
            "task_id": "quiet"}, params={"region": "south"})
        self.assertEqual(ran.code, 1, "the broken callback fails the call: %r" % ran)
        self.assertIn("the callback itself is broken", ran.stderr)
        self.assertIn("dag_failed: reason=task_failure exception=failed tasks: fails "
                      "run_id=scheduled__2024-01-02T00:00:00+00:00 ds=2024-01-02 dag=classic_callbacks ti=quiet "
                      "params={'region': 'south'} dag_run=scheduled__2024-01-02T00:00:00+00:00", ran.stdout)

    def test_a_dags_success_callback_has_no_exception(self):
        ran = run_task(DAG_FILE, "taskflow_callbacks", None, callback={
            "kind": "on_success_callback", "exception": None, "reason": "success", "task_id": "gone"})
        self.assertEqual(ran.code, 0, ran)
        # A last task the DAG no longer has leaves the context without a task instance's id.
        self.assertIn("dag_succeeded: reason=success exception=<absent> run_id=", ran.stdout)
        self.assertIn("ti=None", ran.stdout)
        self.assertIn("on_success_callback of DAG taskflow_callbacks done", ran.stdout)

    def test_a_dag_without_the_callback_says_so(self):
        ran = run_task(DAG_FILE, "taskflow_callbacks", None, callback={"kind": "on_failure_callback"})
        self.assertEqual(ran.code, 0, ran)
        self.assertIn("DAG taskflow_callbacks has no on_failure_callback", ran.stdout)


if __name__ == "__main__":
    unittest.main()
