"""Loading a DAG file as a fresh module, collecting the DAGs it defined, and describing a
failure the way the importer reports it (message, line, trimmed traceback)."""

import hashlib
import os
import sys
import traceback
import types

from . import state
from .dag import DAG
from .serialize import DagError


def module_name_for(path):
    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()
    stem = os.path.splitext(os.path.basename(path))[0]
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    return "unusual_prefix_%s_%s" % (digest, safe)


def add_import_paths(path, dags_folder):
    """Put the DAG file's folder and the DAGs folder on sys.path, after this package's own
    folder (which must stay first so that this `airflow` wins)."""
    wanted = [os.path.dirname(os.path.abspath(path))]
    if dags_folder:
        wanted.append(os.path.abspath(dags_folder))
    for index, folder in enumerate(dict.fromkeys(wanted)):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(1 + index, folder)


def load_dag_file(path, dags_folder, source=None):
    """Execute the file (or `source`, compiled as the file) as a new module; return it."""
    path = os.path.abspath(path)
    state.reset_for_file(path, dags_folder)
    add_import_paths(path, dags_folder)
    if source is None:
        with open(path, "rb") as f:
            source = f.read()
    name = module_name_for(path)
    module = types.ModuleType(name)
    module.__file__ = path
    module.__loader__ = None
    sys.modules[name] = module
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, module.__dict__)
    return module


def collect_dags(module):
    """The DAGs the import made: every DAG created (creation order), then any module global
    DAG not seen yet."""
    found = []
    seen = set()
    for dag in list(state.created_dags) + [v for v in vars(module).values() if isinstance(v, DAG)]:
        if id(dag) not in seen:
            seen.add(id(dag))
            found.append(dag)
    ids = {}
    for dag in found:
        if dag.dag_id in ids:
            raise DagError("the file defines DAG %r twice" % dag.dag_id, dag.created_line)
        ids[dag.dag_id] = dag
    return found


def describe_failure(exc, path):
    """{"message", "line", "column", "traceback"} for an exception raised while loading."""
    path = os.path.abspath(path)
    if isinstance(exc, SyntaxError) and not isinstance(exc, DagError):
        message = "%s: %s" % (type(exc).__name__, exc.msg)
        text = "".join(traceback.format_exception_only(type(exc), exc))
        in_file = exc.filename and os.path.abspath(exc.filename) == path
        return {
            "message": message if in_file or not exc.filename else "%s (in %s)" % (message, exc.filename),
            "line": exc.lineno if in_file else deepest_line(exc, path),
            "column": exc.offset if in_file else None,
            "traceback": text,
        }
    if isinstance(exc, SystemExit):
        message = "the DAG file called sys.exit(%s)" % ("" if exc.code is None else repr(exc.code))
    else:
        message = "%s: %s" % (type(exc).__name__, exc)
    line = getattr(exc, "line", None) if isinstance(exc, DagError) else None
    if line is None:
        line = deepest_line(exc, path)
    return {"message": message, "line": line, "column": None, "traceback": trimmed_traceback(exc, path)}


def _frames(exc):
    return traceback.extract_tb(exc.__traceback__)


def deepest_line(exc, path):
    line = None
    for frame in _frames(exc):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    return line


def trimmed_traceback(exc, path):
    """The traceback from the first frame in the DAG file on (the host's frames dropped)."""
    frames = _frames(exc)
    start = 0
    for index, frame in enumerate(frames):
        if os.path.abspath(frame.filename) == path:
            start = index
            break
    lines = ["Traceback (most recent call last):\n"]
    lines.extend(traceback.format_list(frames[start:]))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)
