"""Parsing and running an Airflow 2 style DAG file (DAG(...), dag=dag, schedule_interval,
PythonOperator XComs, branching, task groups, FileSensor, BashOperator, Variables)."""

import email
import json
import unittest

from support import FakeSmtpServer, NO_VALUE, ParseServer, all_tasks, dag_doc, dag_path, run_task


def body(message):
    parsed = email.message_from_string(message["data"])
    return "".join(
        part.get_payload(decode=True).decode() for part in parsed.walk() if not part.is_multipart()
    )


class Airflow2Parse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ParseServer()
        reply, cls.result = cls.server.parse(
            dag_path("af2_etl.py"), variables={"data_sources": json.dumps(["orders", "users"])}
        )
        cls.reply = reply
        cls.doc = dag_doc(cls.result, "af2_etl")
        cls.tasks = all_tasks(cls.doc)

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def test_reply_and_top_level(self):
        self.assertEqual(self.reply["exit_code"], 0)
        doc = self.doc
        self.assertEqual(doc["schedule"], "0 2 * * *")
        self.assertEqual(doc["start_date"], "2024-01-01T00:00:00+00:00")
        self.assertEqual(doc["owner"], "data-team")
        self.assertEqual(doc["tags"], ["etl"])
        self.assertEqual(doc["description"], "Airflow 2 style")
        self.assertNotIn("default_args", doc)
        self.assertNotIn("catchup", doc)

    def test_default_args_are_applied_to_each_task(self):
        for task_id, task in self.tasks.items():
            if task_id != "flaky":
                self.assertEqual(task["retries"], 2, task)
            self.assertEqual(task["retry_delay"], 60, task)
            self.assertEqual(task["email"], ["alerts@example.com"])
            self.assertIs(task["email_on_retry"], True)
        # An explicit argument wins over default_args.
        self.assertNotIn("retries", self.tasks["flaky"])

    def test_native_kinds(self):
        sensor = self.tasks["wait_for_file"]
        self.assertEqual(sensor["sensor"], {"file": "/data/{{ ds }}.csv"})
        self.assertEqual(sensor["poke_interval"], 30)
        self.assertEqual(sensor["timeout"], 600)
        self.assertEqual(self.tasks["process_large"]["bash"], "echo large {{ ds }}")
        self.assertEqual(self.tasks["join"]["empty"], {})
        self.assertEqual(self.tasks["join"]["trigger_rule"], "none_failed_min_one_success")
        self.assertEqual(self.tasks["join"]["depends_on"], ["process_large", "process_small"])

    def test_python_kinds(self):
        extract = self.tasks["extract"]
        self.assertEqual(extract["airflow"], {"operator": "PythonOperator", "fields": {}, "callbacks": ["on_failure_callback"]})
        self.assertEqual(extract["depends_on"], ["wait_for_file"])
        branch = self.tasks["branch"]
        self.assertEqual(branch["airflow"]["operator"], "BranchPythonOperator")
        self.assertIs(branch["branch"], True)

    def test_groups_from_variables_and_group_edges(self):
        groups = {g["id"]: g for g in self.doc["groups"]}
        self.assertEqual(groups["sources"]["tooltip"], "Per source")
        self.assertEqual([t["id"] for t in groups["sources"]["tasks"]], ["load_orders", "load_users"])
        self.assertEqual(self.tasks["sources.load_orders"]["depends_on"], ["join"])
        self.assertEqual(self.tasks["report.build"]["depends_on"], ["sources.load_orders", "sources.load_users"])
        self.assertEqual(self.tasks["report.publish"]["depends_on"], ["report.build"])


class Airflow2Run(unittest.TestCase):
    def test_python_operator_pushes_xcoms(self):
        ran = run_task("af2_etl.py", "af2_etl", "extract", variables={"data_sources": "[]"})
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, {"rows": [1, 2, 3], "ds": "2024-01-02"})
        self.assertEqual(ran.xcoms, [{"key": "row_count", "value": 1500}])

    def test_branch_returns_its_choice(self):
        ran = run_task("af2_etl.py", "af2_etl", "branch", xcoms=[("extract", -1, "row_count", 1500)])
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, "process_large")
        ran = run_task("af2_etl.py", "af2_etl", "branch", xcoms=[("extract", -1, "row_count", 5)])
        self.assertEqual(ran.return_value, "process_small")

    def test_non_native_bash_with_rendered_field(self):
        ran = run_task("groups.py", "groups", "outer.inner.c", fields={})
        self.assertEqual(ran.code, 1, ran)
        self.assertIn("non-zero exit code 1", ran.stderr)
        ran = run_task("af2_etl.py", "af2_etl", "process_large", fields={"bash_command": "echo large 2024-01-02"})
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, "large 2024-01-02")
        self.assertIn("large 2024-01-02", ran.stdout)

    def test_failure_callback_sends_email(self):
        smtp = FakeSmtpServer()
        try:
            ran = run_task("af2_etl.py", "af2_etl", "flaky", smtp=smtp.settings())
            self.assertEqual(ran.code, 1, ran)
            self.assertIn("ValueError: the source is broken", ran.stderr)
            self.assertEqual(len(smtp.messages), 1, ran)
            self.assertIn("Task flaky failed", smtp.messages[0]["data"])
            self.assertIn("the source is broken", body(smtp.messages[0]))
            # The callback alone, as the worker asks for it after a kill.
            ran = run_task("af2_etl.py", "af2_etl", "extract", smtp=smtp.settings(),
                           callback={"kind": "on_failure_callback", "exception": "killed by timeout"})
            self.assertEqual(ran.code, 0, ran)
            self.assertEqual(len(smtp.messages), 2)
            self.assertIn("killed by timeout", body(smtp.messages[1]))
            self.assertIs(ran.return_value, NO_VALUE)
        finally:
            smtp.close()

    def test_send_email_without_smtp_names_the_settings(self):
        ran = run_task("af2_etl.py", "af2_etl", "extract", smtp=None,
                       callback={"kind": "on_failure_callback", "exception": "boom"})
        self.assertEqual(ran.code, 1, ran)
        self.assertIn("[smtp]", ran.stderr)


if __name__ == "__main__":
    unittest.main()
