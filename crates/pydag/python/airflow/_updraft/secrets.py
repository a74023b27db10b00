"""Variables and connections: read from the environment (`AIRFLOW_VAR_*`, `AIRFLOW_CONN_*`)
first, as Airflow's environment backend does, then from what Updraft passed in (the parse
request's variables, or the task spec's variables and connections)."""

import json
import os
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from . import state
from .exceptions import AirflowNotFoundException

_NO_DEFAULT = object()


class Variable:
    @staticmethod
    def _raw(key):
        env = os.environ.get("AIRFLOW_VAR_" + key.upper())
        if env is not None:
            return env
        return state.variables.get(key)

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
        raise NotImplementedError(
            "Variable.set is not supported inside a task yet (Updraft variables are set "
            "with `dagctl variables set` or in the UI)"
        )

    @classmethod
    def delete(cls, key, session=None):
        raise NotImplementedError("Variable.delete is not supported by Updraft inside a DAG file or task")

    @classmethod
    def update(cls, key, value, serialize_json=False, session=None):
        cls.set(key, value)


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
        data = json.loads(value)
        extra = data.get("extra")
        return cls(
            conn_id=conn_id,
            conn_type=data.get("conn_type"),
            host=data.get("host"),
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            port=data.get("port"),
            extra=extra,
        )

    def __repr__(self):
        return "<Connection %s>" % self.conn_id


def _from_spec(conn_id, data):
    extra = data.get("extra")
    if isinstance(extra, (dict, list)):
        extra = json.dumps(extra)
    port = data.get("port")
    return Connection(
        conn_id=conn_id,
        conn_type=data.get("conn_type"),
        host=data.get("host"),
        login=data.get("login"),
        password=data.get("password"),
        schema=data.get("schema"),
        port=int(port) if port not in (None, "") else None,
        extra=extra,
    )


def get_connection(conn_id):
    env = os.environ.get("AIRFLOW_CONN_" + conn_id.upper())
    if env:
        if env.lstrip().startswith("{"):
            return Connection.from_json(env, conn_id=conn_id)
        return Connection(conn_id=conn_id, uri=env)
    data = state.connections.get(conn_id)
    if data is not None:
        return _from_spec(conn_id, data)
    raise AirflowNotFoundException("The conn_id `%s` isn't defined" % conn_id)


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
