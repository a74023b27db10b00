"""Airflow's command-line client `airflowctl` against a running `dagctl standalone`.

It logs in through POST /auth/token/cli and then speaks the REST API, validating each answer
with its own pydantic models. No keyring exists on a headless test machine, so the login runs
in airflowctl's debug mode, which keeps the token in a file under AIRFLOW_HOME (a temp dir).
Set by run.sh: UPDRAFT_BASE and UPDRAFT_ADMIN_PASSWORD.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

BASE = os.environ["UPDRAFT_BASE"].rstrip("/")
PASSWORD = os.environ["UPDRAFT_ADMIN_PASSWORD"]
AIRFLOWCTL = shutil.which("airflowctl", path=str(Path(sys.executable).parent)) or "airflowctl"


@pytest.fixture(scope="module")
def ctl(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_home")
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW_CLI_DEBUG_MODE="true")
    env.pop("AIRFLOW_CLI_TOKEN", None)

    def run(*args, check=True):
        proc = subprocess.run(
            [AIRFLOWCTL, *args], env=env, capture_output=True, text=True, timeout=60
        )
        if check:
            assert proc.returncode == 0, f"airflowctl {args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def data(*args):
        """Run a command that prints JSON (airflowctl's default output) and parse it."""
        proc = run(*args)
        start = proc.stdout.find("[")
        assert start >= 0, f"airflowctl {args} printed no JSON: {proc.stdout}\n{proc.stderr}"
        try:
            return json.loads(proc.stdout[start:])
        except json.JSONDecodeError as err:
            pytest.fail(f"airflowctl {args} printed bad JSON ({err}): {proc.stdout}\n{proc.stderr}")

    login = run(
        "auth", "login", "--api-url", BASE, "--username", "admin", "--password", PASSWORD
    )
    assert "Login successful" in login.stdout + login.stderr
    assert (home / "debug_creds_production.json").exists()
    run.data = data
    return run


def test_version(ctl):
    # `version` prints a Python dict, not JSON.
    out = ctl("version", "--remote").stdout
    remote = ast.literal_eval(out[out.index("{") : out.index("}") + 1])
    assert remote["airflowctl_version"]
    assert remote["version"]


def test_wrong_password_is_refused(tmp_path):
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), AIRFLOW_CLI_DEBUG_MODE="true")
    proc = subprocess.run(
        [AIRFLOWCTL, "auth", "login", "--api-url", BASE, "--username", "admin",
         "--password", "not-the-password"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert "Login successful" not in proc.stdout + proc.stderr
    assert not (tmp_path / "debug_creds_production.json").exists()


def test_dags_list_get_pause(ctl):
    dags = ctl.data("dags", "list")
    ids = {d["dag_id"] for d in dags}
    assert {"hello", "python_xcom", "branching"} <= ids

    hello = ctl.data("dags", "get", "hello")[0]
    assert hello["dag_id"] == "hello"
    assert hello["timetable_summary"] == "@daily"

    out = ctl("dags", "pause", "mapping").stdout
    assert "pause successful" in out
    assert ctl.data("dags", "get", "mapping")[0]["is_paused"] in (True, "True")
    out = ctl("dags", "unpause", "mapping").stdout
    assert "unpause successful" in out
    assert ctl.data("dags", "get", "mapping")[0]["is_paused"] in (False, "False")

    assert ctl.data("dags", "list-import-errors") == []


def test_trigger_and_list_runs(ctl):
    ctl("dags", "unpause", "python_xcom")
    run_id = f"ctl__{uuid.uuid4().hex[:10]}"
    run = ctl.data("dags", "trigger", "python_xcom", "--dag-run-id", run_id)[0]
    assert run["dag_run_id"] == run_id
    assert run["run_type"] == "manual"

    deadline = time.monotonic() + 90
    while True:
        got = ctl.data("dagrun", "get", "python_xcom", run_id)[0]
        if got["state"] in ("success", "failed"):
            break
        assert time.monotonic() < deadline, f"run {run_id} still {got['state']}"
        time.sleep(0.3)
    assert got["state"] == "success"

    # airflowctl sends an empty `limit=` when --limit is not given (as against Airflow,
    # that is a 422), so the test passes it.
    listed = ctl.data("dagrun", "list", "--dag-id", "python_xcom", "--state", "success",
                      "--limit", "100")[0]
    assert run_id in {r["dag_run_id"] for r in listed["dag_runs"]}


def test_variables(ctl):
    key = f"ctl_var_{uuid.uuid4().hex[:8]}"
    made = ctl.data("variables", "create", "--key", key, "--value", "hello")[0]
    assert made["key"] == key and made["value"] == "hello"
    assert ctl.data("variables", "get", key)[0]["value"] == "hello"
    assert ctl.data("variables", "update", "--key", key, "--value", "bye")[0]["value"] == "bye"
    assert key in {v["key"] for v in ctl.data("variables", "list")}
    ctl("variables", "delete", key)
    assert key not in {v["key"] for v in ctl.data("variables", "list")}


def test_pools(ctl):
    pools = {p["name"]: p for p in ctl.data("pools", "list")}
    assert str(pools["default_pool"]["slots"]) == "128"
    name = f"ctl_pool_{uuid.uuid4().hex[:8]}"
    made = ctl.data("pools", "create", "--name", name, "--slots", "2", "--description", "ctl")[0]
    assert str(made["slots"]) == "2"
    assert str(ctl.data("pools", "get", name)[0]["slots"]) == "2"
    ctl("pools", "delete", name)
    assert name not in {p["name"] for p in ctl.data("pools", "list")}


def test_connections(ctl):
    conn_id = f"ctl_conn_{uuid.uuid4().hex[:8]}"
    made = ctl.data("connections", "create", "--connection-id", conn_id, "--conn-type", "http",
                    "--host", "example.org")[0]
    assert made["connection_id"] == conn_id
    assert made["host"] == "example.org"
    assert conn_id in {c["connection_id"] for c in ctl.data("connections", "list")}
    ctl("connections", "delete", conn_id)
    assert conn_id not in {c["connection_id"] for c in ctl.data("connections", "list")}
