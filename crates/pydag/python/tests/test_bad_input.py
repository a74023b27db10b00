"""Files that fail to import, hang, exit or crash, and the parse server's protocol
(concurrent children, pings, EOF)."""

import time
import unittest

from support import ParseServer, ParseTestCase, all_tasks, dag_doc, dag_path


class BadFiles(ParseTestCase):
    def test_syntax_error_reports_its_line(self):
        error = self.error_of("bad_syntax.py")
        self.assertTrue(error["message"].startswith("SyntaxError: "), error)
        self.assertIn(error["line"], (4, 5))
        self.assertIsNotNone(error["column"])

    def test_unsupported_symbol_is_named(self):
        error = self.error_of("bad_import.py")
        self.assertIn("airflow.operators.python", error["message"])
        self.assertIn("ExternalPythonOperator", error["message"])
        self.assertIn("not supported by Updraft", error["message"])
        self.assertEqual(error["line"], 2)

    def test_unsupported_module_is_named(self):
        error = self.error_of("bad_provider.py")
        self.assertIn("airflow.providers.amazon.aws.operators.s3 is not supported by Updraft", error["message"])
        self.assertTrue(error["message"].startswith("ImportError: "), error)
        self.assertEqual(error["line"], 2)

    def test_exception_reports_the_deepest_line_in_the_file(self):
        error = self.error_of("bad_raise.py")
        self.assertEqual(error["message"], "KeyError: 'missing'")
        self.assertEqual(error["line"], 5)
        self.assertIn("bad_raise.py", error["traceback"])
        self.assertNotIn("parse_server.py", error["traceback"])

    def test_sys_exit(self):
        error = self.error_of("bad_exit.py")
        self.assertEqual(error["message"], "the DAG file called sys.exit(3)")
        self.assertEqual(error["line"], 4)

    def test_abort_is_reported_as_a_signal(self):
        reply, result = self.server.parse(dag_path("bad_abort.py"))
        self.assertEqual(reply.get("signal"), 6, reply)
        self.assertIsNone(result)

    def test_big_output_at_import_goes_to_the_log(self):
        request_id = self.server.send(dag_path("big_output.py"))
        reply = self.server.reply()
        self.assertEqual(reply, {"id": request_id, "exit_code": 0})
        result = self.server.result(request_id)
        self.assertEqual(all_tasks(dag_doc(result, "big_output")), {"only": {"id": "only", "empty": {}, "depends_on": []}})
        self.assertGreaterEqual(len(self.server.log(request_id)), 5 * 1024 * 1024)

    def test_file_without_dags(self):
        reply, result = self.server.parse(dag_path("no_dag.py"))
        self.assertEqual(result, {"dags": []})

    def test_schedule_without_cron_equivalent(self):
        error = self.error_of("bad_schedule.py")
        self.assertIn("does not divide a day evenly", error["message"])
        self.assertEqual(error["line"], 6)

    def test_task_outside_a_dag(self):
        error = self.error_of("outside_dag.py")
        self.assertIn("created outside a DAG", error["message"])
        self.assertEqual(error["line"], 3)

    def test_schedules(self):
        _, result = self.server.parse(dag_path("schedules.py"))
        by_id = {d["dag_id"]: d for d in result["dags"]}
        self.assertEqual(by_id["every_hour"]["schedule"], "0 * * * *")
        self.assertEqual(by_id["every_15m"]["schedule"], "*/15 * * * *")
        self.assertEqual(by_id["every_day"]["schedule"], "0 0 * * *")
        self.assertEqual(by_id["every_6h"]["schedule"], "0 */6 * * *")
        self.assertEqual(by_id["preset"]["schedule"], "@weekly")
        self.assertEqual(by_id["every_hour"]["dagrun_timeout"], 7200)
        self.assertEqual(by_id["legacy"]["schedule"], "@daily")
        self.assertEqual(by_id["legacy"]["max_active_tasks"], 4)
        self.assertEqual(by_id["legacy"]["max_active_runs"], 1)
        self.assertEqual(by_id["intervals"]["schedule"], "0 3 * * *")
        self.assertIs(by_id["intervals"]["data_intervals"], True)
        self.assertIsNone(by_id["no_schedule"]["schedule"])


class ServerProtocol(unittest.TestCase):
    def test_hung_import_is_killed_while_others_are_served(self):
        server = ParseServer()
        try:
            started = time.monotonic()
            hung = server.send(dag_path("bad_loop.py"), timeout=1)
            good = server.send(dag_path("custom_op.py"))
            server.ping(99)
            replies = [server.reply() for _ in range(3)]
            by_id = {r["id"]: r for r in replies}
            # The ping and the good file are answered before the hung import ends.
            self.assertEqual(replies[-1]["id"], hung, replies)
            self.assertEqual(by_id[99], {"id": 99, "pong": True})
            self.assertEqual(by_id[good], {"id": good, "exit_code": 0})
            self.assertEqual(by_id[hung], {"id": hung, "signal": 14})
            self.assertIsNone(server.result(hung))
            self.assertLess(time.monotonic() - started, 5)
        finally:
            self.assertEqual(server.close(), 0)

    def test_eof_waits_for_running_children(self):
        server = ParseServer()
        request_id = server.send(dag_path("custom_op.py"))
        server.proc.stdin.close()
        reply = server.reply()
        self.assertEqual(reply, {"id": request_id, "exit_code": 0})
        self.assertIn("dags", server.result(request_id))
        self.assertEqual(server.proc.wait(timeout=10), 0)
        server.proc.stdout.close()
        server.scratch.cleanup()


if __name__ == "__main__":
    unittest.main()
