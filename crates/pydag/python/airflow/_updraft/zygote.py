"""Zygote mode: a warm parent for the tries of one DAG version, which forks a child per try.

The zygote loads the DAG file once (the `airflow` block of a spec: fileloc, source,
dags_folder, variables, connections, smtp), so a try costs a fork instead of an
interpreter start plus a re-import of the file.

    fd 0  a SOCK_SEQPACKET socket. Each message is one request, JSON
              {"id": 7, "spec": "/tmp/try/spec.json", "cwd": "/dags", "env": {"K": "V"}}
          carrying two file descriptors (SCM_RIGHTS): the try's stdout and stderr. An empty
          message is the end: the zygote waits for its children, then exits.
    fd 1  replies, JSON lines: first {"ready": true} or {"error": "..."} (then it exits);
          then per request {"id": 7, "pid": 1234} once the child runs in its own process
          group, and {"id": 7, "status": <raw wait status>} once it has been reaped; or
          {"id": 7, "failed": "..."} when no child could be started.
    fd 2  the zygote's own diagnostics, and whatever the DAG file prints while loading.

A child makes itself the leader of a new process group (so the worker can signal the try's
whole group), asks the kernel to kill it if the zygote dies (which the worker's death in turn
causes), takes the two descriptors as its stdout and stderr, moves into `cwd`, adds `env`,
and runs the spec's try against the loaded module.
"""

import json
import os
import selectors
import signal
import socket
import sys
import traceback

from .children import ChildWatch

MAX_REQUEST = 1 << 20
PR_SET_PDEATHSIG = 1


def _prctl():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (ImportError, OSError, AttributeError):
        return None


def serve(load_path):
    from . import runner

    reply_fd = os.dup(1)
    # Anything the DAG file prints while loading must not mix with the replies.
    os.dup2(2, 1)

    def reply(value):
        data = (json.dumps(value) + "\n").encode("utf-8")
        while data:
            data = data[os.write(reply_fd, data):]

    try:
        with open(load_path, encoding="utf-8") as f:
            extra = json.load(f)
        runner.set_try_state(extra)
        runner.configure_logging()
        # Load where a cold try would: in the DAG file's folder.
        folder = os.path.dirname(extra.get("fileloc") or "")
        if folder and os.path.isdir(folder):
            os.chdir(folder)
        module = runner.load_module(extra)
    except BaseException as exc:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        reply({"error": "%s: %s" % (type(exc).__name__, exc)})
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    prctl = _prctl()
    sock = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    watch = ChildWatch()
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "request")
    selector.register(watch.wake_r, selectors.EVENT_READ, "wake")
    zygote_pid = os.getpid()
    own_fds = [sock.fileno(), reply_fd] + watch.fds()
    running = {}
    reply({"ready": True})

    def child_main(request, fds):
        code = 1
        try:
            os.setpgid(0, 0)
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != zygote_pid:
                os._exit(70)
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(signum, signal.SIG_DFL)
            for fd in own_fds:
                os.close(fd)
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            os.chdir(request["cwd"])
            os.environ.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
            with open(request["spec"], encoding="utf-8") as f:
                spec = json.load(f)
            code = runner.run_loaded(spec, module)
        except BaseException:
            traceback.print_exc()
            code = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)

    def start(message, fds):
        try:
            request = json.loads(message)
        except ValueError as err:
            sys.stderr.write("updraft zygote: bad request %r: %s\n" % (message[:200], err))
            for fd in fds:
                os.close(fd)
            return
        request_id = request.get("id")
        if len(fds) != 2:
            reply({"id": request_id, "failed": "the request carried %d descriptors, not 2" % len(fds)})
            for fd in fds:
                os.close(fd)
            return
        try:
            pid = os.fork()
        except OSError as err:
            reply({"id": request_id, "failed": "fork failed: %s" % err})
            for fd in fds:
                os.close(fd)
            return
        if pid == 0:
            child_main(request, fds)
        for fd in fds:
            os.close(fd)
        try:
            # Also from this side, so the group exists before the worker may signal it.
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child already did it, or has already exited
        running[pid] = request_id
        reply({"id": request_id, "pid": pid})

    def reap():
        for request_id, status in watch.reap(running):
            reply({"id": request_id, "status": status})

    closed = False
    while not (closed and not running):
        for key, _ in selector.select():
            if key.data == "wake":
                watch.drain()
            elif not closed:
                try:
                    message, fds, flags, _ = socket.recv_fds(sock, MAX_REQUEST, 2)
                except InterruptedError:
                    continue
                if not message and not fds:
                    closed = True
                    selector.unregister(sock)
                    continue
                if flags & socket.MSG_CTRUNC:
                    sys.stderr.write("updraft zygote: a request's descriptors were cut off\n")
                start(message.decode("utf-8", "replace"), fds)
        reap()
    return 0
