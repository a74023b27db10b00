"""TriggerDagRunOperator and EmailOperator: native `trigger_dag` and `email` tasks where the
arguments fit, the `airflow` kind (run here in Python) where they do not."""

import email
import unittest

from support import FakeSmtpServer, NO_VALUE, parsed_tasks, run_task

DAG_FILE = "native_ops.py"


def parts(message):
    """(content type, filename, decoded text) of each leaf part of a received message."""
    parsed = email.message_from_string(message["data"])
    return [
        (part.get_content_type(), part.get_filename(), part.get_payload(decode=True).decode())
        for part in parsed.walk()
        if not part.is_multipart()
    ]


class NativeOpsParse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tasks = parsed_tasks(DAG_FILE, "native_ops")

    def test_trigger_with_conf_keeps_templates_and_pulls_xcom_args(self):
        task = self.tasks["trigger"]
        self.assertEqual(task["trigger_dag"], {
            "dag_id": "target",
            "conf": {"day": "{{ ds }}", "files": "{{ ti.xcom_pull('pick_files') }}", "n": 3},
        })
        self.assertEqual(task["depends_on"], ["pick_files"])
        self.assertEqual(task["retries"], 1)

    def test_trigger_waiting_with_states(self):
        self.assertEqual(self.tasks["trigger_wait"]["trigger_dag"], {
            "dag_id": "target_{{ params.env }}",
            "wait_for_completion": True,
            "poke_interval": 10,
            "allowed_states": ["success", "failed"],
            "failed_states": [],
        })

    def test_arguments_left_at_their_defaults_stay_native(self):
        self.assertEqual(self.tasks["trigger_af1"]["trigger_dag"], {"dag_id": "target", "conf": {}})
        self.assertNotIn("airflow", self.tasks["trigger_af1"])

    def test_a_subclass_is_never_native(self):
        self.assertEqual(self.tasks["subclassed"]["airflow"], {"operator": "MyTrigger", "fields": {}})

    def test_email_is_native_with_its_template_file_read(self):
        self.assertEqual(self.tasks["mail"]["email"], {
            "to": ["a@example.com", "b@example.com"],
            "cc": "c@example.com",
            "subject": "Report {{ ds }}",
            "html": "<h1>Report for {{ ds }}</h1>\n",
        })
        self.assertNotIn("airflow", self.tasks["mail"])

    def test_email_needing_python(self):
        bcc = self.tasks["mail_bcc"]
        self.assertEqual(bcc["airflow"], {
            "operator": "EmailOperator",
            "fields": {"subject": "Files for {{ ds }}", "html_content": "<p>{{ ds }}</p>"},
        })
        self.assertEqual(self.tasks["mail_callback"]["airflow"]["operator"], "EmailOperator")
        self.assertEqual(self.tasks["mail_xcom"]["airflow"]["operator"], "EmailOperator")
        self.assertEqual(self.tasks["mail_xcom"]["depends_on"], ["recipients"])
        self.assertEqual(self.tasks["mail_subclass"]["airflow"], {"operator": "MyEmail", "fields": {}})


class NativeOpsRun(unittest.TestCase):
    def setUp(self):
        self.smtp = FakeSmtpServer()

    def tearDown(self):
        self.smtp.close()

    def test_email_with_bcc_and_files_is_sent_from_python(self):
        fields = {"subject": "Files for 2024-01-02", "html_content": "<p>2024-01-02</p>"}
        ran = run_task(DAG_FILE, "native_ops", "mail_bcc", smtp=self.smtp.settings(), fields=fields)
        self.assertEqual(ran.code, 0, ran)
        self.assertIs(ran.return_value, NO_VALUE)
        [message] = self.smtp.messages
        self.assertEqual(message["rcpt"], ["<a@example.com>", "<hidden@example.com>"])
        self.assertIn("Subject: Files for 2024-01-02", message["data"])
        self.assertNotIn("hidden@example.com", message["data"])
        self.assertEqual(parts(message), [
            ("text/html", None, "<p>2024-01-02</p>"),
            ("application/octet-stream", "attachment.txt", "attached text\n"),
        ])

    def test_email_to_an_xcom_arg(self):
        xcoms = [("recipients", -1, "return_value", ["x@example.com", "y@example.com"])]
        ran = run_task(DAG_FILE, "native_ops", "mail_xcom", smtp=self.smtp.settings(), xcoms=xcoms)
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(self.smtp.messages[0]["rcpt"], ["<x@example.com>", "<y@example.com>"])

    def test_email_with_a_callback(self):
        ran = run_task(DAG_FILE, "native_ops", "mail_callback", smtp=self.smtp.settings())
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(len(self.smtp.messages), 1)
        self.assertIn("notified about mail_callback", ran.stdout)

    def test_email_without_smtp_settings_names_them(self):
        ran = run_task(DAG_FILE, "native_ops", "mail_callback", smtp=None)
        self.assertEqual(ran.code, 1, ran)
        self.assertIn("[smtp]", ran.stderr)

    def test_a_subclassed_email_over_another_connection_fails_saying_why(self):
        ran = run_task(DAG_FILE, "native_ops", "mail_subclass", smtp=self.smtp.settings())
        self.assertEqual(ran.code, 98, ran)  # failed, no retry (AirflowFailException)
        self.assertIn("AirflowFailException: EmailOperator mail_subclass: conn_id='smtp_other' is not supported", ran.stderr)
        self.assertEqual(self.smtp.messages, [])

    def test_a_subclassed_trigger_fails_saying_why(self):
        ran = run_task(DAG_FILE, "native_ops", "subclassed")
        self.assertEqual(ran.code, 98, ran)  # failed, no retry (AirflowFailException)
        self.assertIn(
            "AirflowFailException: task subclassed (MyTrigger, a subclass of TriggerDagRunOperator) "
            "cannot run in Python",
            ran.stderr,
        )


if __name__ == "__main__":
    unittest.main()
