"""Updraft's host for Airflow Python DAG files.

Usage:
    python3 -u updraft_host.py parse          # the warm, forking parse server
    python3 -u updraft_host.py run SPEC.json  # one try of one task
    python3 -u updraft_host.py zygote LOAD.json  # a warm parent forking the tries of one DAG version

This folder is put first on sys.path, so its `airflow` package (and its small `pendulum`)
win over any installed one.

parse
    Reads JSON requests, one per line, on stdin:
        {"id": 7, "path": "/abs/dags/etl.py", "dags_folder": "/abs/dags",
         "out": "/tmp/x/7.json", "timeout": 30, "variables": {"name": "stored text"}}
        {"id": 8, "ping": true}
    For each file request a child is forked (the server itself never imports user code):
    it arms `alarm(timeout)`, sends its stdout and stderr to `out + ".log"`, puts the DAG
    file's folder and `dags_folder` on sys.path, imports the file as a fresh module, and
    writes (via `out + ".tmp"`, renamed) either
        {"dags": [<dag-format JSON document with `airflow` task blocks>, ...]}
    or
        {"error": {"message": "Type: text", "line": N|null, "column": N|null,
                   "traceback": "..."}}
    then exits 0. For every finished child the server writes one line on stdout:
        {"id": 7, "exit_code": 0}   or   {"id": 7, "signal": 14}
    and answers a ping with {"id": 8, "pong": true}. On stdin EOF it waits for its
    children and exits.

    A document names the Python callbacks it has, which stay on the objects: a task's in
    its `airflow` block, `"callbacks": ["on_failure_callback", ...]`, and the DAG's
    (on_success_callback, on_failure_callback) in the DAG's own `"airflow": {"callbacks"}`.

run
    SPEC is the worker's Python runner spec (dag_id, task_id, run_id, try_number,
    map_index, context, xcoms) plus an `airflow` block: fileloc, source, dags_folder,
    fields (rendered template fields), expand (this map index's values), downstream,
    log_url, variables, connections, smtp, callback (built in one place: the pydag crate's
    `spec` module). The return value is written as JSON to $UPDRAFT_RETURN_VALUE_FILE and
    `ti.xcom_push` appends {"key", "value"} lines to $UPDRAFT_XCOM_FILE. The task's own
    callbacks run in this process (on_execute before execute; on_success, on_retry or
    on_failure after); before a retry or failure callback runs, its name is appended to
    $UPDRAFT_CALLBACKS_RAN_FILE, so that a try killed before that point is known to
    still owe it.
    With `callback` set ({"kind": "on_failure_callback", "exception": "...", "reason":
    "task_failure", "task_id": null}), only that callback runs, once the state it follows
    has committed: the task's (the worker or scheduler asks for it after the try's
    process was killed or its worker died), or the DAG's when task_id is null (the
    scheduler asks for it when a run ends; `callback.task_id` names the run's last task
    instance, whose context it gets, plus `reason` — success, task_failure, timed_out —
    and `exception` for a failed run). Exit 1 then means a callback raised.
    `Variable.set`/`Variable.delete` append {"key", "value"} / {"key", "delete": true}
    lines to $UPDRAFT_VARIABLE_FILE, which the worker stores after the try.
    Exit codes: 0 success, 99 skipped, 1 failed, 98 failed with no retry.

zygote
    LOAD is the `airflow` block of a run spec. The file is loaded once; each try is then
    a forked child running one spec (see airflow/_updraft/zygote.py for the protocol).
"""

import os
import sys


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    if here in sys.path:
        sys.path.remove(here)
    sys.path.insert(0, here)
    for name in [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]:
        del sys.modules[name]
    import airflow  # noqa: F401  (warms the package before any fork)

    if len(argv) >= 2 and argv[1] == "parse":
        from airflow._updraft.parse_server import serve

        serve()
        return 0
    if len(argv) >= 3 and argv[1] == "run":
        from airflow._updraft.runner import run

        return run(argv[2])
    if len(argv) >= 3 and argv[1] == "zygote":
        from airflow._updraft.zygote import serve as serve_zygote

        return serve_zygote(argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
