"""Clear import errors for the parts of Airflow Updraft does not implement.

A meta-path finder answers every `airflow.*` module that has no file
in this package with an ImportError naming it, and `module_getattr` gives a known module a
`__getattr__` that names the missing symbol, so `from airflow.x import Y` never silently
yields something that does nothing.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys


def module_missing_message(name):
    return "%s is not supported by Updraft (no such module in its airflow package)" % name


def symbol_missing_message(module, name):
    return "%s.%s is not supported by Updraft (cannot import name %r from %s)" % (
        module,
        name,
        name,
        module,
    )


def requested_name(fullname):
    """The module the import statement asked for: when `a.b.c.d` is imported and `a.b` is
    the first missing part, the message should name `a.b.c.d`."""
    best = fullname
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            name = frame.f_locals.get("name")
            if isinstance(name, str) and name.startswith(fullname + ".") and len(name) > len(best):
                best = name
        frame = frame.f_back
    return best


class _Refusing(importlib.abc.Loader):
    def __init__(self, name):
        self.name = name

    def create_module(self, spec):
        raise ImportError(module_missing_message(self.name), name=self.name)

    def exec_module(self, module):  # never reached: create_module raises
        raise ImportError(module_missing_message(self.name), name=self.name)


class UnsupportedAirflowFinder(importlib.abc.MetaPathFinder):
    """Placed last on sys.meta_path: only modules nothing else found reach it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "airflow" or not fullname.startswith("airflow."):
            return None
        return importlib.machinery.ModuleSpec(fullname, _Refusing(requested_name(fullname)))


def install_finder():
    if not any(isinstance(f, UnsupportedAirflowFinder) for f in sys.meta_path):
        sys.meta_path.append(UnsupportedAirflowFinder())


def module_getattr(module_name, lazy=None):
    """A module `__getattr__`: names in `lazy` (name → zero-argument loader) are resolved on
    first use; any other public name is an ImportError naming the module and the symbol."""

    def __getattr__(name):
        if lazy and name in lazy:
            value = lazy[name]()
            setattr(sys.modules[module_name], name, value)
            return value
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        module = sys.modules[module_name]
        if hasattr(module, "__path__"):
            # A submodule asked for as an attribute (`from airflow.operators import python`).
            fullname = module_name + "." + name
            if importlib.machinery.PathFinder.find_spec(fullname, module.__path__) is not None:
                return importlib.import_module(fullname)
        raise ImportError(symbol_missing_message(module_name, name), name=module_name)

    return __getattr__
