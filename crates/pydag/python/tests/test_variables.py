"""Variables and connections in a running task: Variable.set/delete/update/setdefault append
their changes to $UPDRAFT_VARIABLE_FILE and are seen by later reads; lookups read the
environment first, then what the spec passed."""

import json
import os
import tempfile
import unittest

from support import run_task

DAG_FILE = "variables.py"


class VariableWrites(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="updraft-variables-test-")
        self.path = os.path.join(self.tmp.name, "variables.jsonl")

    def tearDown(self):
        self.tmp.cleanup()

    def run_writing(self, task_id, env=None, **kwargs):
        ran = run_task(DAG_FILE, "variables", task_id, env=dict(env or {}, UPDRAFT_VARIABLE_FILE=self.path), **kwargs)
        lines = []
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                lines = [json.loads(line) for line in f]
        return ran, lines

    def test_set_delete_update_setdefault(self):
        ran, lines = self.run_writing("write", variables={"old": "x", "plain": "1"})
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, ["42", {"a": [1, 2]}, "gone", "43", "first", "first", 1, 0])
        self.assertEqual(lines, [
            {"key": "plain", "value": "42"},
            {"key": "as_json", "value": json.dumps({"a": [1, 2]}, indent=2)},
            {"key": "old", "delete": True},
            {"key": "plain", "value": "43"},
            {"key": "fresh", "value": "first"},
            {"key": "never_there", "delete": True},
        ])

    def test_the_context_sees_a_new_value(self):
        ran, lines = self.run_writing("through_the_context")
        self.assertEqual(ran.return_value, "now", ran)
        self.assertEqual(lines, [{"key": "shown", "value": "now"}])

    def test_the_environment_still_wins_and_a_warning_says_so(self):
        ran, lines = self.run_writing("through_the_context", env={"AIRFLOW_VAR_SHOWN": "from env"})
        self.assertEqual(ran.return_value, "from env", ran)
        self.assertEqual(lines, [{"key": "shown", "value": "now"}])
        self.assertIn("also set in the environment (AIRFLOW_VAR_SHOWN)", ran.stdout + ran.stderr)

    def test_update_of_a_missing_variable(self):
        ran, lines = self.run_writing("update_missing")
        self.assertEqual(ran.code, 1, ran)
        self.assertIn("KeyError: 'Variable missing does not exist'", ran.stderr)
        self.assertEqual(lines, [])

    def test_without_a_variable_file(self):
        ran = run_task(DAG_FILE, "variables", "write", variables={"plain": "1"}, env={"UPDRAFT_VARIABLE_FILE": ""})
        self.assertEqual(ran.code, 1, ran)
        self.assertIn("Variable.set('plain'): $UPDRAFT_VARIABLE_FILE is not set", ran.stderr)


class Lookups(unittest.TestCase):
    ENV = {
        "AIRFLOW_CONN_URI": "mysql://me:se%2Fcret@host.example:3306/base?charset=utf8",
        "AIRFLOW_CONN_AS_JSON": json.dumps({"conn_type": "http", "host": "api", "port": "443", "extra": {"a": 1}}),
        "AIRFLOW_CONN_BLANK": "",
        "AIRFLOW_VAR_FROM_ENV": "env value",
        "AIRFLOW_VAR_EMPTY_ENV": "",
    }

    def test_connections(self):
        connections = {
            "spec": {"conn_type": "postgres", "host": "db", "port": "5432", "login": "u", "password": "p",
                     "schema": "s", "extra": {"sslmode": "require"}},
            "blank": {"conn_type": "http", "host": "h", "port": None, "extra": None},
            "uri": {"conn_type": "never", "host": "read"},
        }
        ran = run_task(DAG_FILE, "secrets_lookup", "connections", connections=connections, env=self.ENV)
        self.assertEqual(ran.code, 0, ran)
        self.assertEqual(ran.return_value, {
            "spec": ["postgres", "db", 5432, "u", "p", "s", {"sslmode": "require"}],
            "uri": ["mysql", "host.example", 3306, "me", "se/cret", "base", {"charset": "utf8"}],
            "as_json": ["http", "api", 443, None, None, None, {"a": 1}],
            # An empty AIRFLOW_CONN_ variable defines nothing: the spec's connection is used.
            "blank": ["http", "h", None, None, None, None, {}],
            "missing": "AirflowNotFoundException: The conn_id `missing` isn't defined",
        })

    def test_variables(self):
        ran = run_task(DAG_FILE, "secrets_lookup", "variables", variables={"stored": "kept", "empty_env": "not me"}, env=self.ENV)
        self.assertEqual(ran.return_value, ["env value", "", "kept", None], ran)


if __name__ == "__main__":
    unittest.main()
