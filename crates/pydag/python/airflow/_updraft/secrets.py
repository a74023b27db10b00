"""Variables and connections: read from the environment (`AIRFLOW_VAR_*`, `AIRFLOW_CONN_*`)
first, as Airflow's environment backend does, then from what Updraft passed in (the parse
request's variables, or the task spec's variables and connections).

A running task may also set and delete variables: each change is appended as a JSON line to
the file named by `$UPDRAFT_VARIABLE_FILE` (`{"key": K, "value": "stored text"}` or
`{"key": K, "delete": true}`), which the worker applies after the try, and is seen at once
by later reads in the same try. While a DAG file is parsed, nothing can be stored.
"""

import json
import logging
import os
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from . import state
from .exceptions import AirflowException, AirflowNotFoundException

_NO_DEFAULT = object()
VARIABLE_FILE_ENV = "UPDRAFT_VARIABLE_FILE"

log = logging.getLogger(__name__)


def lookup(env_prefix, stored, key):
    """Airflow's order of secrets backends: the environment variable `env_prefix + KEY`,
    else what Updraft passed in (`stored`); None when neither has `key`."""
    value = os.environ.get(env_prefix + key.upper())
    if value is not None:
        return value
    return stored.get(key)


def record_variable_change(what, key, change):
    """Append `{"key": key, **change}` to the worker's variable file; refused while a DAG
    file is parsed, and when the worker named no file."""
    if not isinstance(key, str) or not key:
        raise TypeError("%s needs a variable key (a non-empty string), got %r" % (what, key))
    if state.mode != "run":
        raise AirflowException(
            "%s(%r) cannot be used while Updraft parses a DAG file: variables are stored only "
            "from a running task (set them with `dagctl variables set` or in the UI)" % (what, key)
        )
    path = os.environ.get(VARIABLE_FILE_ENV)
    if not path:
        raise AirflowException(
            "%s(%r): $%s is not set, so the change cannot be stored (this worker does not "
            "take variable changes from tasks)" % (what, key, VARIABLE_FILE_ENV)
        )
    if os.environ.get(Variable.ENV_PREFIX + key.upper()) is not None:
        log.warning(
            "The variable %s is also set in the environment (%s%s), which is read first: the "
            "stored value changes, but reading it still gives the environment's",
            key, Variable.ENV_PREFIX, key.upper(),
        )
    line = dict({"key": key}, **change)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


class Variable:
    ENV_PREFIX = "AIRFLOW_VAR_"

    @classmethod
    def _raw(cls, key):
        return lookup(cls.ENV_PREFIX, state.variables, key)

    @classmethod
    def get(cls, key, default_var=_NO_DEFAULT, deserialize_json=False, default=_NO_DEFAULT):
        if default is not _NO_DEFAULT and default_var is _NO_DEFAULT:
            default_var = default
        raw = cls._raw(key)
        if raw is None:
            if default_var is not _NO_DEFAULT:
                return default_var
            raise KeyError("Variable %s does not exist" % key)
        if deserialize_json:
            return json.loads(raw)
        return raw

    @classmethod
    def setdefault(cls, key, default, description=None, deserialize_json=False):
        value = cls.get(key, default_var=None, deserialize_json=deserialize_json)
        if value is None:
            if default is None:
                raise ValueError("Default Value must be set")
            cls.set(key, default, serialize_json=deserialize_json)
            return default
        return value

    @classmethod
    def set(cls, key, value, description=None, serialize_json=False, session=None):
        """Store `value` (as JSON text with serialize_json, else as str(value), as Airflow
        stores it) from a running task; the description is not kept."""
        stored = json.dumps(value, indent=2) if serialize_json else str(value)
        record_variable_change("Variable.set", key, {"value": stored})
        state.variables[key] = stored

    @classmethod
    def delete(cls, key, session=None):
        """Delete the variable from a running task; returns how many were deleted (0 or 1)."""
        record_variable_change("Variable.delete", key, {"delete": True})
        return 1 if state.variables.pop(key, None) is not None else 0

    @classmethod
    def update(cls, key, value, serialize_json=False, session=None):
        """Set a variable that exists (KeyError otherwise, as in Airflow)."""
        if cls._raw(key) is None:
            raise KeyError("Variable %s does not exist" % key)
        cls.set(key, value, serialize_json=serialize_json)


class Connection:
    def __init__(
        self,
        conn_id=None,
        conn_type=None,
        description=None,
        host=None,
        login=None,
        password=None,
        schema=None,
        port=None,
        extra=None,
        uri=None,
    ):
        self.conn_id = conn_id
        self.conn_type = conn_type
        self.description = description
        self.host = host
        self.login = login
        self.password = password
        self.schema = schema
        self.port = port
        if isinstance(extra, dict):
            extra = json.dumps(extra)
        self.extra = extra
        if uri:
            self._parse_uri(uri)

    def _parse_uri(self, uri):
        parts = urlsplit(uri)
        self.conn_type = parts.scheme.replace("-", "_")
        self.host = unquote(parts.hostname) if parts.hostname else None
        self.login = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.port = parts.port
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.schema = unquote(path) if path else None
        if parts.query:
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            if "__extra__" in query:
                self.extra = query["__extra__"]
            else:
                self.extra = json.dumps(query)

    @property
    def extra_dejson(self):
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def get_extra(self):
        return self.extra

    def get_password(self):
        return self.password

    def get_uri(self):
        uri = "%s://" % (self.conn_type or "").replace("_", "-")
        if self.login is not None or self.password is not None:
            uri += quote(self.login or "", safe="")
            if self.password is not None:
                uri += ":" + quote(self.password, safe="")
            uri += "@"
        if self.host:
            uri += quote(self.host, safe="")
        if self.port:
            uri += ":%s" % self.port
        if self.schema:
            uri += "/" + quote(self.schema, safe="")
        if self.extra_dejson:
            uri += "?" + urlencode(self.extra_dejson)
        return uri

    @classmethod
    def get(cls, conn_id):
        return get_connection(conn_id)

    @classmethod
    def from_json(cls, value, conn_id=None):
        return cls.from_fields(conn_id, json.loads(value))

    @classmethod
    def from_fields(cls, conn_id, data):
        """A connection from a mapping of its fields (Airflow's JSON form, or a task spec's
        entry): `extra` may be text or JSON data, `port` a number or its text."""
        extra = data.get("extra")
        if isinstance(extra, (dict, list)):
            extra = json.dumps(extra)
        port = data.get("port")
        return cls(
            conn_id=conn_id,
            conn_type=data.get("conn_type"),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            port=int(port) if port not in (None, "") else None,
            extra=extra,
        )

    def __repr__(self):
        return "<Connection %s>" % self.conn_id


def get_connection(conn_id):
    """The connection: from `AIRFLOW_CONN_<ID>` (a URI or Airflow's JSON form), else from
    the task spec's connections."""
    found = lookup("AIRFLOW_CONN_", state.connections, conn_id)
    if found == "":
        # An empty AIRFLOW_CONN_ variable defines nothing (Airflow goes on to the next backend).
        found = state.connections.get(conn_id)
    if found is None:
        raise AirflowNotFoundException("The conn_id `%s` isn't defined" % conn_id)
    if not isinstance(found, str):
        return Connection.from_fields(conn_id, found)
    if found.lstrip().startswith("{"):
        return Connection.from_json(found, conn_id=conn_id)
    return Connection(conn_id=conn_id, uri=found)


class BaseHook:
    """Hooks' base: only connection lookup is provided."""

    conn_name_attr = None
    default_conn_name = None

    def __init__(self, logger_name=None):
        pass

    @classmethod
    def get_connection(cls, conn_id):
        return get_connection(conn_id)

    @classmethod
    def get_connections(cls, conn_id):
        return [get_connection(conn_id)]

    def get_conn(self):
        raise NotImplementedError("%s.get_conn() is not implemented" % type(self).__name__)
