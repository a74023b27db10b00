"""Dependencies between tasks: `>>`/`<<`, set_upstream/set_downstream, chain,
cross_downstream, and edge labels.

Anything that can stand on either side of `>>` (an operator, an XComArg, a task group, a
label, or a list of those) is reduced to operators when the edge is made: as a downstream
to its roots, as an upstream to its leaves, as Airflow does.
"""


def _shift(method, returns_self):
    """A bitshift operator of DependencyMixin: calls `method` (set_downstream or
    set_upstream) with the other operand, then returns `self` or the other operand."""

    def shift(self, other):
        getattr(self, method)(other)
        return self if returns_self else other

    return shift


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

    # As in Airflow, `a >> b` is a.set_downstream(b) and `a << b` is a.set_upstream(b), each
    # returning b; the reflected forms serve a list on the left and return self.
    __rshift__ = _shift("set_downstream", returns_self=False)
    __lshift__ = _shift("set_upstream", returns_self=False)
    __rrshift__ = _shift("set_upstream", returns_self=True)  # [a, b] >> self
    __rlshift__ = _shift("set_downstream", returns_self=True)  # [a, b] << self


def _operators(node, end):
    """The operators at one end of `node`: each node's `end` method (`_roots` or `_leaves`),
    over every item of a list."""
    if isinstance(node, (list, tuple, set, frozenset)):
        return [op for item in node for op in _operators(item, end)]
    if isinstance(node, DependencyMixin):
        return getattr(node, end)()
    raise TypeError(
        "cannot set a dependency with %r (a %s): expected a task, an XComArg, a task "
        "group, or a list of them" % (node, type(node).__name__)
    )


def roots(node):
    """The operators that become downstream when `node` is on the right of `>>`."""
    return _operators(node, "_roots")


def leaves(node):
    """The operators that become upstream when `node` is on the left of `>>`."""
    return _operators(node, "_leaves")


def link(upstream, downstream):
    """Make every leaf of `upstream` an upstream of every root of `downstream`. A label on
    either side keeps the node, and links its two sides once it has both."""
    if isinstance(downstream, EdgeModifier):
        downstream._attach(downstream._upstream, upstream)
        return
    if isinstance(upstream, EdgeModifier):
        upstream._attach(upstream._downstream, downstream)
        return
    ups = leaves(upstream)
    downs = roots(downstream)
    for down in downs:
        for up in ups:
            down._add_upstream(up)


class EdgeModifier(DependencyMixin):
    """`Label("text")` between two tasks (`a >> Label("x") >> b`, `b << Label("x") << a`):
    the edge is made, the label is not shown."""

    def __init__(self, label=None):
        self.label = label
        self._upstream = []
        self._downstream = []

    def _attach(self, side, node):
        side.append(node)
        for up in self._upstream:
            for down in self._downstream:
                link(up, down)

    def _roots(self):
        return roots(self._downstream)

    def _leaves(self):
        return leaves(self._upstream)


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
