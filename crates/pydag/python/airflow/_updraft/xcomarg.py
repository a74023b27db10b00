"""XComArg: a reference to an XCom of a task (its `.output`, or a TaskFlow call's result).

Passed to another task it makes that task downstream of the producer, and it is resolved to
the pulled value when the consuming task runs.
"""

from .deps import DependencyMixin

RETURN_KEY = "return_value"


class XComArg(DependencyMixin):
    def __init__(self, operator, key=RETURN_KEY):
        self.operator = operator
        self.key = key

    # -- dependencies ---------------------------------------------------------------
    def _roots(self):
        return [self.operator]

    def _leaves(self):
        return [self.operator]

    # -- access ---------------------------------------------------------------------
    def __getitem__(self, key):
        return XComArg(self.operator, key)

    def __iter__(self):
        raise TypeError("an XComArg is not iterable while the DAG is parsed; use .expand() to map over it")

    def __repr__(self):
        if self.key == RETURN_KEY:
            return "XComArg(%s)" % self.operator.task_id
        return "XComArg(%s, key=%r)" % (self.operator.task_id, self.key)

    def __str__(self):
        # Airflow renders an XComArg in a string as a template pulling it with xcom_pull.
        if self.key == RETURN_KEY:
            return "{{ ti.xcom_pull('%s') }}" % self.operator.task_id
        return "{{ ti.xcom_pull('%s', key='%s') }}" % (self.operator.task_id, self.key)

    def template(self):
        """The template that pulls this XCom for `expand`, where Airflow resolves the XComArg
        itself: a mapped producer gives the list of its instances' values, even of one. It
        pulls a list of one id, which under Airflow's `xcom_pull` rules is that flat list;
        `reject('none')` drops the None a producer that pushed nothing would add."""
        if getattr(self.operator, "is_mapped", False):
            return "{{ ti.xcom_pull(task_ids=['%s'], key='%s') | reject('none') | list }}" % (
                self.operator.task_id,
                self.key,
            )
        if self.key == RETURN_KEY:
            return "{{ ti.xcom_pull('%s') }}" % self.operator.task_id
        return "{{ ti.xcom_pull('%s', key='%s') }}" % (self.operator.task_id, self.key)

    def map(self, f):
        raise NotImplementedError("XComArg.map() is not supported by Updraft")

    def zip(self, *others, **kwargs):
        raise NotImplementedError("XComArg.zip() is not supported by Updraft")

    def concat(self, *others):
        raise NotImplementedError("XComArg.concat() is not supported by Updraft")

    def resolve(self, context):
        # Airflow: a mapped producer resolves to the sequence of its values (a list even of
        # one), any other to its value pulled as from an unmapped task.
        if getattr(self.operator, "is_mapped", False):
            return context["ti"]._xcom_sequence(self.operator.task_id, self.key)
        return context["ti"].xcom_pull(task_ids=self.operator.task_id, key=self.key, map_indexes=None)

    @staticmethod
    def iter_xcom_references(value):
        """Every XComArg inside `value` (lists, tuples, sets and dict values)."""
        found = []
        _collect(value, found, set())
        return found


def _collect(value, found, seen):
    if isinstance(value, XComArg):
        found.append(value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect(item, found, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found, seen)


def resolve_xcomargs(value, context):
    """`value` with every XComArg replaced by its pulled value (containers rebuilt)."""
    if isinstance(value, XComArg):
        return value.resolve(context)
    if isinstance(value, list):
        return [resolve_xcomargs(v, context) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_xcomargs(v, context) for v in value)
    if isinstance(value, set):
        return {resolve_xcomargs(v, context) for v in value}
    if isinstance(value, dict):
        return {k: resolve_xcomargs(v, context) for k, v in value.items()}
    return value
