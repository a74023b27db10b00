"""DAG params: `Param(default, type=..., enum=..., ...)` and the dict that holds them."""

import copy

NOTSET = object()

# The schema keys dag-format carries; others are kept on the object only.
SCHEMA_KEYS = ("type", "description", "enum", "minimum", "maximum")


class Param:
    def __init__(self, default=NOTSET, description=None, **schema):
        self.value = default
        self.description = description
        self.schema = dict(schema)
        if description is not None:
            self.schema.setdefault("description", description)

    def has_value(self):
        return self.value is not NOTSET

    def resolve(self, value=NOTSET, suppress_exception=False):
        if value is NOTSET:
            value = self.value
        if value is NOTSET:
            if suppress_exception:
                return None
            from .exceptions import ParamValidationError

            raise ParamValidationError("No value passed and Param has no default value")
        return value

    def dump(self):
        out = dict(self.schema)
        out["value"] = None if self.value is NOTSET else self.value
        return out

    def __copy__(self):
        p = Param.__new__(Param)
        p.value = self.value
        p.description = self.description
        p.schema = dict(self.schema)
        return p

    def __deepcopy__(self, memo):
        p = Param.__new__(Param)
        p.value = copy.deepcopy(self.value, memo)
        p.description = self.description
        p.schema = copy.deepcopy(self.schema, memo)
        return p

    def __repr__(self):
        return "Param(%r)" % (None if self.value is NOTSET else self.value,)


class ParamsDict(dict):
    """Params by name; reading one gives its value (a Param's default)."""

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if isinstance(value, Param):
            return value.resolve(suppress_exception=True)
        return value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def get_param(self, key):
        return super().__getitem__(key)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def validate(self):
        return {k: self[k] for k in self}

    def dump(self):
        return {k: self[k] for k in self}


def serialize_param(value):
    """A param for the DAG document: a Param's long form, or the plain default value.

    The long form always carries `default`, so it is told apart from an object default."""
    if isinstance(value, Param):
        out = {"default": None if value.value is NOTSET else value.value}
        for key in SCHEMA_KEYS:
            if key not in value.schema:
                continue
            item = value.schema[key]
            if key == "type" and not isinstance(item, str):
                # A list of types (e.g. ["null", "string"]) has no dag-format equivalent.
                continue
            out[key] = item
        return out
    if isinstance(value, dict) and ("default" in value or "type" in value):
        return {"default": value}
    return value
