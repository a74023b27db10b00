"""What Updraft refuses while parsing a DAG file, naming the reason and the line: arguments
of TriggerDagRunOperator and EmailOperator with no equivalent, Variable.set/delete at parse
time, and a DAG with no tasks."""

import unittest

from support import ParseTestCase, all_tasks, dag_doc, dag_path

DAG_FILE = "refused.py"


def case_line(case):
    """The line after `case == "<case>"` in the DAG file, where the refused call is."""
    with open(dag_path(DAG_FILE), encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, text in enumerate(lines, start=1):
        if 'case == "%s"' % case in text:
            return number + 1
    raise AssertionError("no case %r in %s" % (case, DAG_FILE))


class Refusals(ParseTestCase):
    def refused(self, case):
        error = self.error_of(DAG_FILE, variables={"case": case})
        self.assertEqual(error["line"], case_line(case), error)
        return error["message"]

    def test_the_file_itself_is_fine(self):
        _, result = self.server.parse(dag_path(DAG_FILE), variables={"case": "none"})
        self.assertEqual(list(all_tasks(dag_doc(result, "refused"))), ["only"])

    def test_trigger_arguments_without_native_equivalent(self):
        self.assertEqual(
            self.refused("trigger_args"),
            "DagError: task 't': TriggerDagRunOperator: execution_date, reset_dag_run are not "
            "supported by Updraft (its native trigger_dag kind has no equivalent, and Python "
            "cannot make DAG runs)",
        )

    def test_trigger_with_a_callback(self):
        message = self.refused("trigger_callback")
        self.assertIn("on_failure_callback (set on the task or in default_args) is not supported by Updraft", message)
        self.assertIn("native trigger_dag kind, which calls no Python", message)

    def test_mapped_trigger(self):
        self.assertIn("TriggerDagRunOperator: mapping (expand) is not supported by Updraft", self.refused("trigger_mapped"))

    def test_trigger_conf_without_json_form(self):
        self.assertIn("conf must be JSON-serializable", self.refused("trigger_conf"))

    def test_trigger_states_must_be_run_states(self):
        self.assertEqual(
            self.refused("trigger_state"),
            "ValueError: TriggerDagRunOperator t: allowed_states: 'done' is not a DAG run state "
            "(failed, queued, running, success)",
        )

    def test_trigger_takes_one_logical_date(self):
        self.assertIn("takes logical_date or execution_date, not both", self.refused("trigger_both_dates"))

    def test_email_over_another_connection(self):
        self.assertIn(
            "EmailOperator: conn_id='smtp_gmail' is not supported by Updraft: email goes out over "
            "Updraft's [smtp] settings",
            self.refused("email_conn"),
        )

    def test_email_without_subject(self):
        self.assertIn("EmailOperator: subject is not set", self.refused("email_subject"))

    def test_variable_writes_at_parse_time(self):
        message = self.refused("variable_set")
        self.assertTrue(message.startswith(
            "AirflowException: Variable.set('written_at_parse_time') cannot be used while Updraft "
            "parses a DAG file"), message)
        self.assertIn("dagctl variables set", message)
        self.assertIn("Variable.delete('old') cannot be used while Updraft parses", self.refused("variable_delete"))

    def test_dag_without_tasks(self):
        self.assertEqual(
            self.refused("empty"),
            "DagError: DAG 'refused_empty' has no tasks: Updraft needs at least one task in a "
            "DAG (add one, or remove the DAG)",
        )


if __name__ == "__main__":
    unittest.main()
