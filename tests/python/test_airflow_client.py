"""Airflow's own Python client (`apache-airflow-client`) against a running `dagctl standalone`.

Every call goes through the generated client, which validates each response with pydantic:
a field missing, misnamed or of the wrong type in Updraft's API fails here. Set by run.sh:
UPDRAFT_BASE (http://127.0.0.1:PORT) and UPDRAFT_ADMIN_PASSWORD.
"""

import os
import time
import uuid

import pytest
import requests

import airflow_client.client as af
from airflow_client.client.exceptions import ApiException

BASE = os.environ["UPDRAFT_BASE"].rstrip("/")
PASSWORD = os.environ["UPDRAFT_ADMIN_PASSWORD"]
DAG = "python_xcom"
RUN_TIMEOUT = 90.0


def wait_until(what, check, timeout=RUN_TIMEOUT):
    """Poll `check` until it returns something truthy, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@pytest.fixture(scope="session")
def token():
    # The client has no call for the token endpoint: a user posts to it directly.
    resp = requests.post(
        f"{BASE}/auth/token",
        json={"username": "admin", "password": PASSWORD},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["access_token"]


@pytest.fixture(scope="session")
def client(token):
    config = af.Configuration(host=BASE, access_token=token)
    with af.ApiClient(config) as api_client:
        yield api_client


def trigger(client, conf=None):
    run = af.DagRunApi(client).trigger_dag_run(
        DAG,
        af.TriggerDAGRunPostBody(
            logical_date=None, conf=conf or {}, dag_run_id=f"client__{uuid.uuid4().hex[:10]}"
        ),
    )
    assert run.dag_id == DAG
    return run


def wait_for_run(client, run_id, states=("success",)):
    runs = af.DagRunApi(client)

    def done():
        run = runs.get_dag_run(DAG, run_id)
        if run.state in ("success", "failed"):
            return run
        return None

    run = wait_until(f"run {run_id} to finish", done)
    assert run.state in states, f"run {run_id} ended {run.state}"
    return run


@pytest.fixture(scope="session")
def finished_run(client):
    """One triggered run of python_xcom, unpaused first, waited to success."""
    dags = af.DAGApi(client)
    dag = dags.patch_dag(DAG, af.DAGPatchBody(is_paused=False))
    assert dag.is_paused is False
    run = trigger(client, conf={"source": "client-test", "n": 3})
    assert run.conf == {"source": "client-test", "n": 3}
    assert run.run_type == "manual"
    return wait_for_run(client, run.dag_run_id)


def test_unauthenticated_request_is_refused():
    config = af.Configuration(host=BASE)
    with af.ApiClient(config) as api_client:
        with pytest.raises(ApiException) as err:
            af.DAGApi(api_client).get_dags()
    assert err.value.status == 401


def test_health_and_version(client):
    health = af.MonitorApi(client).get_health()
    assert health.metadatabase.status == "healthy"
    assert health.scheduler.status == "healthy"
    assert health.scheduler.latest_scheduler_heartbeat is not None
    version = af.VersionApi(client).get_version()
    assert version.version


def test_list_and_filter_dags(client):
    dags = af.DAGApi(client)
    listed = dags.get_dags(limit=100)
    ids = {d.dag_id for d in listed.dags}
    assert {"hello", "python_xcom", "branching", "mapping"} <= ids
    assert listed.total_entries == len(listed.dags)

    page = dags.get_dags(limit=2, offset=1, order_by=["dag_id"])
    assert [d.dag_id for d in page.dags] == sorted(ids)[1:3]
    assert page.total_entries == len(ids)

    tagged = dags.get_dags(tags=["python"])
    assert [d.dag_id for d in tagged.dags] == ["python_xcom"]
    assert {t.name for t in tagged.dags[0].tags} == {"example", "python"}

    pattern = dags.get_dags(dag_id_pattern="fan_out")
    assert [d.dag_id for d in pattern.dags] == ["fan_out_fan_in"]

    paused = dags.get_dags(paused=True, limit=100)
    assert all(d.is_paused for d in paused.dags)

    one = dags.get_dag("hello")
    assert one.dag_id == "hello"
    assert one.description == "Hello, Updraft — a three-step chain"


def test_dag_details_and_tasks(client):
    details = af.DAGApi(client).get_dag_details(DAG)
    assert details.dag_id == DAG
    assert details.fileloc.endswith("python_xcom.yaml")

    tasks = af.TaskApi(client).get_tasks(DAG)
    by_id = {t.task_id: t for t in tasks.tasks}
    assert set(by_id) == {"extract", "transform", "load"}
    assert tasks.total_entries == 3
    assert by_id["extract"].downstream_task_ids == ["transform"]
    assert by_id["transform"].downstream_task_ids == ["load"]
    assert by_id["load"].downstream_task_ids == []

    one = af.TaskApi(client).get_task(DAG, "load")
    assert one.task_id == "load"


def test_triggered_run_task_instances_log_and_xcom(client, finished_run):
    run_id = finished_run.dag_run_id
    assert finished_run.start_date is not None
    assert finished_run.end_date is not None

    tis = af.TaskInstanceApi(client)
    listed = tis.get_task_instances(DAG, run_id)
    assert listed.total_entries == 3
    states = {ti.task_id: ti.state for ti in listed.task_instances}
    assert states == {"extract": "success", "transform": "success", "load": "success"}
    for ti in listed.task_instances:
        assert ti.map_index == -1
        assert ti.try_number == 1
        assert ti.dag_run_id == run_id

    load = tis.get_task_instance(DAG, run_id, "load")
    assert load.state == "success"
    assert load.duration is not None and load.duration >= 0

    log = tis.get_log(DAG, run_id, "load", 1)
    lines = log.content.actual_instance
    text = "\n".join(line if isinstance(line, str) else line.event for line in lines)
    assert "3 rows loaded" in text, text

    xcoms = af.XComApi(client)
    entry = xcoms.get_xcom_entry(DAG, "transform", run_id, "return_value").actual_instance
    assert entry.key == "return_value"
    assert entry.task_id == "transform"
    assert entry.value == {"count": 3, "total": 50.0}

    entries = xcoms.get_xcom_entries(DAG, run_id, "extract")
    assert [e.key for e in entries.xcom_entries] == ["return_value"]

    with pytest.raises(ApiException) as err:
        xcoms.get_xcom_entry(DAG, "transform", run_id, "no_such_key")
    assert err.value.status == 404


def test_list_runs_with_filters(client, finished_run):
    runs = af.DagRunApi(client)
    run_id = finished_run.dag_run_id

    ok = runs.get_dag_runs(DAG, state=["success"], order_by=["-run_after"], limit=100)
    assert run_id in {r.dag_run_id for r in ok.dag_runs}
    assert all(r.state == "success" for r in ok.dag_runs)

    failed = runs.get_dag_runs(DAG, state=["failed"])
    assert run_id not in {r.dag_run_id for r in failed.dag_runs}

    by_pattern = runs.get_dag_runs(DAG, run_id_pattern=run_id)
    assert [r.dag_run_id for r in by_pattern.dag_runs] == [run_id]

    manual = runs.get_dag_runs(DAG, run_type=["manual"], limit=100)
    assert run_id in {r.dag_run_id for r in manual.dag_runs}

    everywhere = runs.get_dag_runs("~", limit=100)
    assert run_id in {r.dag_run_id for r in everywhere.dag_runs}

    after = runs.get_dag_runs(DAG, run_after_gte=finished_run.run_after)
    assert run_id in {r.dag_run_id for r in after.dag_runs}


def test_mark_failed_clear_and_delete(client, finished_run):
    runs = af.DagRunApi(client)
    tis = af.TaskInstanceApi(client)
    run = wait_for_run(client, trigger(client).dag_run_id)
    run_id = run.dag_run_id

    marked = runs.patch_dag_run(DAG, run_id, af.DAGRunPatchBody(state="failed"))
    assert marked.state == "failed"
    assert runs.get_dag_run(DAG, run_id).state == "failed"

    # dry_run defaults to true: the answer lists what would be cleared, nothing changes.
    preview = tis.post_clear_task_instances(
        DAG, af.ClearTaskInstancesBody(dag_run_id=run_id, only_failed=False)
    )
    assert {ti.task_id for ti in preview.task_instances} == {"extract", "transform", "load"}
    assert runs.get_dag_run(DAG, run_id).state == "failed"
    unchanged = tis.get_task_instances(DAG, run_id).task_instances
    assert all(ti.try_number == 1 for ti in unchanged)

    cleared = tis.post_clear_task_instances(
        DAG,
        af.ClearTaskInstancesBody(dag_run_id=run_id, only_failed=False, dry_run=False),
    )
    assert {ti.task_id for ti in cleared.task_instances} == {"extract", "transform", "load"}
    rerun = wait_for_run(client, run_id)
    assert rerun.state == "success"
    again = tis.get_task_instances(DAG, run_id).task_instances
    assert {ti.task_id: ti.try_number for ti in again} == {"extract": 2, "transform": 2, "load": 2}
    assert all(ti.state == "success" for ti in again)

    runs.delete_dag_run(DAG, run_id)
    with pytest.raises(ApiException) as err:
        runs.get_dag_run(DAG, run_id)
    assert err.value.status == 404
    # The first run is untouched.
    assert runs.get_dag_run(DAG, finished_run.dag_run_id).state == "success"


def test_variable_crud(client):
    variables = af.VariableApi(client)
    key = f"client_var_{uuid.uuid4().hex[:8]}"
    created = variables.post_variable(
        af.VariableBody(key=key, value='{"a": 1}', description="made by the client test")
    )
    assert created.key == key
    assert created.value == '{"a": 1}'

    got = variables.get_variable(key)
    assert got.value == '{"a": 1}'
    assert got.description == "made by the client test"
    assert key in {v.key for v in variables.get_variables(limit=100).variables}

    updated = variables.patch_variable(key, af.VariableBody(key=key, value="two"))
    assert updated.value == "two"
    assert variables.get_variable(key).value == "two"

    variables.delete_variable(key)
    with pytest.raises(ApiException) as err:
        variables.get_variable(key)
    assert err.value.status == 404


def test_pools(client):
    pools = af.PoolApi(client)
    listed = pools.get_pools()
    default = {p.name: p for p in listed.pools}["default_pool"]
    assert default.slots == 128

    name = f"client_pool_{uuid.uuid4().hex[:8]}"
    made = pools.post_pool(af.PoolBody(name=name, slots=3, description="client test"))
    assert made.slots == 3
    assert made.open_slots == 3
    patched = pools.patch_pool(name, af.PoolPatchBody(slots=5))
    assert patched.slots == 5
    assert pools.get_pool(name).slots == 5
    pools.delete_pool(name)
    with pytest.raises(ApiException) as err:
        pools.get_pool(name)
    assert err.value.status == 404


def test_connections(client):
    connections = af.ConnectionApi(client)
    conn_id = f"client_conn_{uuid.uuid4().hex[:8]}"
    made = connections.post_connection(
        af.ConnectionBody(
            connection_id=conn_id,
            conn_type="postgres",
            host="db.example",
            port=5432,
            login="ana",
            password="s3cret",
            schema="sales",
        )
    )
    assert made.connection_id == conn_id
    got = connections.get_connection(conn_id)
    assert got.host == "db.example"
    assert got.port == 5432
    assert got.var_schema == "sales"
    assert got.password != "s3cret", "a connection's password is never sent back in clear"
    assert conn_id in {c.connection_id for c in connections.get_connections(limit=100).connections}
    connections.delete_connection(conn_id)
    with pytest.raises(ApiException) as err:
        connections.get_connection(conn_id)
    assert err.value.status == 404


def test_import_errors(client):
    errors = af.ImportErrorApi(client).get_import_errors()
    # The example DAGs all parse.
    assert errors.total_entries == 0
    assert errors.import_errors == []
