"""Dependencies between tasks: `>>`/`<<`, set_upstream/set_downstream, chain,
cross_downstream, and edge labels.

Anything that can stand on either side of `>>` (an operator, an XComArg, a task group, a
label, or a list of those) is reduced to operators when the edge is made: as a downstream
to its roots, as an upstream to its leaves, as Airflow does.
"""


class DependencyMixin:
    """`>>`, `<<`, set_upstream and set_downstream for every node kind."""

    def _roots(self):
        raise NotImplementedError

    def _leaves(self):
        raise NotImplementedError

    def set_downstream(self, other, edge_modifier=None):
        link(self, other)

    def set_upstream(self, other, edge_modifier=None):
        link(other, self)

    def __rshift__(self, other):
        link(self, other)
        return other

    def __lshift__(self, other):
        link(other, self)
        return other

    def __rrshift__(self, other):
        # [a, b] >> self
        link(other, self)
        return self

    def __rlshift__(self, other):
        # [a, b] << self
        link(self, other)
        return self


def roots(node):
    """The operators that become downstream when `node` is on the right of `>>`."""
    if isinstance(node, (list, tuple, set, frozenset)):
        return [op for item in node for op in roots(item)]
    if isinstance(node, DependencyMixin):
        return node._roots()
    raise TypeError(
        "cannot set a dependency with %r (a %s): expected a task, an XComArg, a task "
        "group, or a list of them" % (node, type(node).__name__)
    )


def leaves(node):
    """The operators that become upstream when `node` is on the left of `>>`."""
    if isinstance(node, (list, tuple, set, frozenset)):
        return [op for item in node for op in leaves(item)]
    if isinstance(node, DependencyMixin):
        return node._leaves()
    raise TypeError(
        "cannot set a dependency with %r (a %s): expected a task, an XComArg, a task "
        "group, or a list of them" % (node, type(node).__name__)
    )


def link(upstream, downstream):
    """Make every leaf of `upstream` an upstream of every root of `downstream`."""
    if isinstance(downstream, EdgeModifier):
        downstream._upstream.append(upstream)
        return
    ups = leaves(upstream)
    downs = roots(downstream)
    for down in downs:
        for up in ups:
            down._add_upstream(up)


class EdgeModifier(DependencyMixin):
    """`Label("text")` between two tasks: the edge is made, the label is not shown."""

    def __init__(self, label=None):
        self.label = label
        self._upstream = []

    def _roots(self):
        return []

    def _leaves(self):
        return leaves(self._upstream)

    def __rrshift__(self, other):
        self._upstream.append(other)
        return self

    def __lshift__(self, other):
        # a << Label << b: the label's upstream is b.
        self._upstream.append(other)
        return other

    def __rlshift__(self, other):
        # a << Label: the label's downstream is a; kept as a pending downstream.
        return _PendingDownstream(other)

    def __rshift__(self, other):
        link(self, other)
        return other


class _PendingDownstream(DependencyMixin):
    """The result of `a << Label(...)`, waiting for the `<< b` that completes it."""

    def __init__(self, downstream):
        self.downstream = downstream

    def _roots(self):
        return roots(self.downstream)

    def _leaves(self):
        return leaves(self.downstream)

    def __lshift__(self, other):
        link(other, self.downstream)
        return other


def Label(label):
    return EdgeModifier(label)


def chain(*tasks):
    """Airflow's chain: consecutive items are linked; two adjacent lists must have the same
    length and are linked pairwise."""
    for up, down in zip(tasks, tasks[1:]):
        up_is_list = isinstance(up, (list, tuple))
        down_is_list = isinstance(down, (list, tuple))
        if up_is_list and down_is_list:
            if len(up) != len(down):
                raise ValueError(
                    "chain() got lists of different lengths (%d and %d): adjacent lists are "
                    "linked pairwise and must be the same length" % (len(up), len(down))
                )
            for u, d in zip(up, down):
                link(u, d)
        else:
            link(up, down)


def cross_downstream(from_tasks, to_tasks):
    """Every task of `from_tasks` becomes an upstream of every task of `to_tasks`."""
    for task in from_tasks:
        link(task, to_tasks)


def chain_linear(*elements):
    """Every element is linked to the whole next one (lists cross-linked)."""
    for up, down in zip(elements, elements[1:]):
        link(up, down)
