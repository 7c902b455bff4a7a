"""What one computation reads off its expression graph, in one walk."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..ir.attribution import Attribution
from ..ir.metrics import Metric
from ..ir.neurons import CounterfactualNeurons
from ..ir.node import Node, Ref, walk
from ..ir.views import Source, source_of


@dataclass(frozen=True)
class Graph:
    """The roots of a computation and what they depend on, from one walk of the graph.

    ``leaves[token]`` lists the attributions a node is computed from (in walk order);
    ``modules[token]`` the ids of the modules those attributions run; ``tensors`` every
    tensor reference with the argument that holds it; ``module_of`` each module by id;
    ``metrics[token]`` the metrics a node reads (evaluated after the attributions).
    """

    roots: tuple[Node, ...]
    leaves: dict[str, tuple[Attribution, ...]]
    modules: dict[str, frozenset[int]]
    tensors: tuple[tuple[str, Ref], ...]
    module_of: dict[int, Any]
    metrics: dict[str, tuple[Metric, ...]] = field(default_factory=dict)

    def leaves_of(self, roots: list[Node]) -> list[Attribution]:
        """The attributions ``roots`` are computed from, each once, in walk order.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> m = ia.model(torch.nn.Linear(4, 3).eval())
        >>> a, b = m.on(torch.rand(2, 4)).saliency(0), m.on(torch.rand(2, 4)).saliency(0)
        >>> g = read_graph([a.join(b).mean().node, a.node])
        >>> len(g.leaves_of(list(g.roots))), len(g.leaves_of([a.node]))
        (2, 1)
        """
        found: dict[str, Attribution] = {}
        for root in roots:
            for leaf in self.leaves[root.token]:
                found.setdefault(leaf.token, leaf)
        return list(found.values())

    def metrics_of(self, roots: list[Node]) -> list[Metric]:
        """The metrics ``roots`` read, each once, in walk order.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> d = q.saliency(0).deletion(steps=2)
        >>> g = read_graph([d.node])
        >>> [m.kind for m in g.metrics_of([d.node])]
        ['deletion']
        """
        found: dict[str, Metric] = {}
        for root in roots:
            for metric in self.metrics.get(root.token, ()):
                found.setdefault(metric.token, metric)
        return list(found.values())


def read_graph(roots: list[Node]) -> Graph:
    """Walk the graph of ``roots`` once and collect what the computation needs.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Linear(4, 3).eval()
    >>> e = ia.model(net).on(torch.rand(2, 4)).saliency(0).abs()
    >>> g = read_graph([e.node])
    >>> [leaf.method for leaf in g.leaves[e.node.token]], g.modules[e.node.token] == {id(net)}
    (['saliency'], True)
    """
    leaves: dict[str, tuple[Attribution, ...]] = {}
    modules: dict[str, frozenset[int]] = {}
    tensors: list[tuple[str, Ref]] = []
    module_of: dict[int, Any] = {}
    metrics: dict[str, tuple[Metric, ...]] = {}
    for node in walk(roots):  # children come before their parents
        named = [(f.name, getattr(node, f.name)) for f in fields(node)]  # type: ignore[arg-type]
        for argument, value in named + list(getattr(node, "params", ())):
            if isinstance(value, Ref) and hasattr(value.value, "_version"):  # tensors
                tensors.append((argument, value))
        if isinstance(node, Attribution):
            module = source_of(node.view).model.torch_module
            module_of[id(module)] = module
            leaves[node.token], modules[node.token] = (node,), frozenset({id(module)})
        elif isinstance(node, Source) or node.role == "view":
            continue
        else:
            found: dict[str, Attribution] = {}
            for child in node.children:
                for leaf in leaves.get(child.token, ()):
                    found.setdefault(leaf.token, leaf)
            leaves[node.token] = tuple(found.values())
            modules[node.token] = frozenset().union(
                *(modules.get(c.token, frozenset()) for c in node.children)
            )
            under = dict.fromkeys(m for c in node.children for m in metrics.get(c.token, ()))
            if isinstance(node, Metric):
                under[node] = None
            if under:
                metrics[node.token] = tuple(under)
            if isinstance(node, CounterfactualNeurons):  # runs its model in its own phase
                module = node.model.torch_module
                module_of[id(module)] = module
                modules[node.token] |= {id(module)}
    return Graph(tuple(roots), leaves, modules, tuple(tensors), module_of, metrics)
