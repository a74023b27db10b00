"""Helpers shared by the tests: drive updraft_host.py exactly as the Rust side does."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DAGS = os.path.join(HERE, "dags")
HOST = os.path.join(os.path.dirname(HERE), "updraft_host.py")


def dag_path(name):
    return os.path.join(DAGS, name)


class ParseServer:
    """One `updraft_host.py parse` process; requests are sent as JSON lines."""

    def __init__(self):
        self.scratch = tempfile.TemporaryDirectory(prefix="updraft-parse-test-")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", HOST, "parse"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        )
        self.next_id = 1

    def send(self, path, variables=None, timeout=10, dags_folder=DAGS):
        request_id = self.next_id
        self.next_id += 1
        out = os.path.join(self.scratch.name, "%d.json" % request_id)
        request = {
            "id": request_id,
            "path": path,
            "dags_folder": dags_folder,
            "out": out,
            "timeout": timeout,
            "variables": variables or {},
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return request_id

    def ping(self, request_id):
        self.proc.stdin.write(json.dumps({"id": request_id, "ping": True}) + "\n")
        self.proc.stdin.flush()

    def reply(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("the parse server closed its stdout")
        return json.loads(line)

    def result(self, request_id):
        out = os.path.join(self.scratch.name, "%d.json" % request_id)
        if not os.path.exists(out):
            return None
        with open(out, encoding="utf-8") as f:
            return json.load(f)

    def log(self, request_id):
        path = os.path.join(self.scratch.name, "%d.json.log" % request_id)
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def parse(self, path, variables=None, timeout=10):
        """Send one request, wait for its reply; returns (reply, result)."""
        request_id = self.send(path, variables, timeout)
        reply = self.reply()
        assert reply["id"] == request_id, reply
        return reply, self.result(request_id)

    def close(self):
        self.proc.stdin.close()
        code = self.proc.wait(timeout=20)
        self.proc.stdout.close()
        self.scratch.cleanup()
        return code


class ParseTestCase(unittest.TestCase):
    """Tests sharing one parse server (`self.server`)."""

    @classmethod
    def setUpClass(cls):
        cls.server = ParseServer()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def error_of(self, name, **kwargs):
        """The import error of DAG file `name` (the child must have exited 0)."""
        reply, result = self.server.parse(dag_path(name), **kwargs)
        self.assertEqual(reply.get("exit_code"), 0, reply)
        self.assertIn("error", result, result)
        return result["error"]


def parsed_tasks(name, dag_id, **kwargs):
    """Every task by full id of DAG `dag_id` of the file `name`, parsed by a server of its own."""
    server = ParseServer()
    try:
        _, result = server.parse(dag_path(name), **kwargs)
    finally:
        server.close()
    return all_tasks(dag_doc(result, dag_id))


def dag_doc(result, dag_id):
    assert "dags" in result, result
    for doc in result["dags"]:
        if doc["dag_id"] == dag_id:
            return doc
    raise AssertionError("no DAG %r in %r" % (dag_id, [d["dag_id"] for d in result["dags"]]))


def all_tasks(doc, prefix=""):
    """Every task of a DAG document by full id."""
    found = {}
    for t in doc.get("tasks", []):
        found[prefix + t["id"]] = t
    for g in doc.get("groups", []):
        found.update(all_tasks(g, prefix + g["id"] + "."))
    return found


def render(value, names):
    """A stand-in for the worker's rendering: `{{ name }}` replaced by names[name]."""
    if isinstance(value, str):
        for name, text in names.items():
            value = value.replace("{{ %s }}" % name, str(text))
        return value
    if isinstance(value, list):
        return [render(v, names) for v in value]
    if isinstance(value, dict):
        return {k: render(v, names) for k, v in value.items()}
    return value


def context(run_id="scheduled__2024-01-02T00:00:00+00:00", ds="2024-01-02", **extra):
    ts = ds + "T00:00:00+00:00"
    ctx = {
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": ds.replace("-", "") + "T000000",
        "logical_date": ts,
        "data_interval_start": ts,
        "data_interval_end": ts,
        "run_id": run_id,
        "conf": {},
        "params": {},
        "map_index": -1,
        "try_number": 1,
        "dag_run": {
            "dag_id": "x",
            "run_id": run_id,
            "run_type": "scheduled",
            "logical_date": ts,
            "data_interval_start": ts,
            "data_interval_end": ts,
            "conf": {},
        },
    }
    ctx.update(extra)
    return ctx


class Ran:
    def __init__(self, code, stdout, stderr, return_value, xcoms):
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        self.return_value = return_value
        self.xcoms = xcoms

    def __repr__(self):
        return "Ran(code=%r, rv=%r, xcoms=%r)\n--stdout--\n%s\n--stderr--\n%s" % (
            self.code, self.return_value, self.xcoms, self.stdout, self.stderr)


NO_VALUE = object()


def run_task(dag_file, dag_id, task_id, xcoms=(), fields=None, expand=None, downstream=(),
             map_index=-1, try_number=1, callback=None, smtp=None, variables=None,
             connections=None, params=None, env=None, timeout=30):
    """Run one try with `updraft_host.py run` and collect what it produced."""
    path = dag_path(dag_file)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    with tempfile.TemporaryDirectory(prefix="updraft-run-test-") as tmp:
        ctx = context()
        ctx["map_index"] = map_index
        ctx["try_number"] = try_number
        ctx["dag_run"]["dag_id"] = dag_id
        if params:
            ctx["params"] = params
        for name, value in (expand or {}).items():
            ctx[name] = value
        spec = {
            "dag_id": dag_id,
            "task_id": task_id,
            "run_id": ctx["run_id"],
            "try_number": try_number,
            "map_index": map_index,
            "context": ctx,
            "xcoms": [
                {"task_id": t, "map_index": m, "key": k, "value": v} for (t, m, k, v) in xcoms
            ],
            "airflow": {
                "fileloc": path,
                "source": source,
                "dags_folder": DAGS,
                "fields": fields or {},
                "expand": expand or {},
                "downstream": list(downstream),
                "log_url": "http://127.0.0.1:8080/dags/%s/runs/x/tasks/%s" % (dag_id, task_id),
                "variables": variables or {},
                "connections": connections or {},
                "smtp": smtp,
                "callback": callback,
            },
        }
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        rv_path = os.path.join(tmp, "return_value.json")
        xcom_path = os.path.join(tmp, "xcom.jsonl")
        full_env = dict(os.environ, UPDRAFT_RETURN_VALUE_FILE=rv_path, UPDRAFT_XCOM_FILE=xcom_path,
                        PYTHONDONTWRITEBYTECODE="1")
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-u", HOST, "run", spec_path],
            capture_output=True, text=True, env=full_env, cwd=tmp, timeout=timeout,
        )
        value = NO_VALUE
        if os.path.exists(rv_path):
            with open(rv_path, encoding="utf-8") as f:
                value = json.load(f)
        pushed = []
        if os.path.exists(xcom_path):
            with open(xcom_path, encoding="utf-8") as f:
                pushed = [json.loads(line) for line in f if line.strip()]
        return Ran(proc.returncode, proc.stdout, proc.stderr, value, pushed)


class FakeSmtpServer:
    """A minimal SMTP server on localhost that keeps the messages it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._session(conn.makefile("rwb"))

    def _session(self, f):
        def say(text):
            f.write((text + "\r\n").encode())
            f.flush()

        say("220 fake ESMTP")
        message = {"rcpt": [], "data": ""}
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode().strip()
            upper = cmd.upper()
            if upper.startswith("EHLO") or upper.startswith("HELO"):
                say("250 fake")
            elif upper.startswith("MAIL FROM"):
                message["from"] = cmd[10:].strip()
                say("250 OK")
            elif upper.startswith("RCPT TO"):
                message["rcpt"].append(cmd[8:].strip())
                say("250 OK")
            elif upper == "DATA":
                say("354 go ahead")
                lines = []
                while True:
                    data = f.readline().decode()
                    if data.rstrip("\r\n") == ".":
                        break
                    lines.append(data)
                message["data"] = "".join(lines)
                self.messages.append(message)
                message = {"rcpt": [], "data": ""}
                say("250 queued")
            elif upper == "QUIT":
                say("221 bye")
                return
            else:
                say("250 OK")

    def settings(self):
        return {"host": "127.0.0.1", "port": self.port, "user": None, "password": None,
                "starttls": False, "ssl": False, "from": "updraft@localhost", "timeout": 5}

    def close(self):
        self.sock.close()
