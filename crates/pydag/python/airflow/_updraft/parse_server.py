"""Parse mode: a warm server that imports each requested DAG file in a forked child.

The parent never imports user code. Requests are JSON lines on stdin; for each one a child
is forked that imports the file under an alarm (the kernel ends a hung import), with its
output sent to `out + ".log"`, and writes `{"dags": [...]}` or `{"error": {...}}` to
`out`. The parent answers one JSON line per finished child, woken by SIGCHLD through a
wakeup pipe, and exits once stdin is closed and every child has ended.
"""

import json
import os
import selectors
import signal
import sys

from .children import ChildWatch


def write_reply(reply):
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def write_json_atomically(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def child_main(request):
    """In the forked child: import the file and write the result. Never returns."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.alarm(max(1, int(request.get("timeout") or 30)))
        out = request["out"]
        log = os.open(out + ".log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        result = parse_file(request)
        sys.stdout.flush()
        sys.stderr.flush()
        write_json_atomically(out, result)
    except BaseException as exc:  # the result file could not be written: say so in the log
        try:
            os.write(2, ("updraft parse child failed: %r\n" % (exc,)).encode())
        except OSError:
            pass
        os._exit(70)
    os._exit(0)


def parse_file(request):
    """Import the file and serialize its DAGs, or describe why that failed."""
    from . import state
    from .loader import collect_dags, describe_failure, load_dag_file
    from .serialize import serialize_dag

    path = request["path"]
    state.mode = "parse"
    state.variables = dict(request.get("variables") or {})
    state.connections = {}
    try:
        module = load_dag_file(path, request.get("dags_folder"))
        docs = [serialize_dag(dag) for dag in collect_dags(module)]
        json.dumps(docs)
        return {"dags": docs}
    except BaseException as exc:
        return {"error": describe_failure(exc, path)}


def warm_package():
    """Import every module of the package once, before any fork: a child then finds what a
    DAG file imports already loaded, instead of paying for it on every file (most of an
    import's cost otherwise). A module that fails to import is left to fail in the child,
    where the error is reported against the DAG file."""
    import importlib
    import pkgutil

    import airflow

    from . import loader, serialize  # noqa: F401  (what every child uses)

    for module in pkgutil.walk_packages(airflow.__path__, "airflow."):
        try:
            importlib.import_module(module.name)
        except Exception:  # noqa: BLE001 (reported in the child that needs it)
            pass


def serve():
    """The server loop (see the module docstring)."""
    warm_package()
    selector = selectors.DefaultSelector()
    watch = ChildWatch()
    stdin = sys.stdin.fileno()
    selector.register(stdin, selectors.EVENT_READ, "stdin")
    selector.register(watch.wake_r, selectors.EVENT_READ, "wake")
    running = {}
    pending = b""
    eof = False

    def reap():
        for request_id, status in watch.reap(running):
            if os.WIFSIGNALED(status):
                write_reply({"id": request_id, "signal": os.WTERMSIG(status)})
            else:
                write_reply({"id": request_id, "exit_code": os.WEXITSTATUS(status)})

    def handle(line):
        try:
            request = json.loads(line)
        except ValueError as err:
            sys.stderr.write("updraft_host: bad request %r: %s\n" % (line[:200], err))
            return
        if request.get("ping"):
            write_reply({"id": request.get("id"), "pong": True})
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            for fd in watch.fds():
                os.close(fd)
            child_main(request)
        running[pid] = request.get("id")

    while not (eof and not running):
        for key, _ in selector.select():
            if key.data == "wake":
                watch.drain()
            elif key.data == "stdin":
                chunk = os.read(stdin, 65536)
                if not chunk:
                    eof = True
                    selector.unregister(stdin)
                    if pending.strip():
                        handle(pending.decode("utf-8", "replace"))
                    pending = b""
                    continue
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        handle(line.decode("utf-8", "replace"))
        reap()
