"""The expression graph as a ``networkx.DiGraph``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .format import label
from .node import Node, walk

if TYPE_CHECKING:
    import networkx as nx


def to_networkx(*roots: Node) -> nx.DiGraph:
    """Every node reachable from ``roots``, keyed by token; edges run from input to consumer.

    Node attributes: ``op``, ``label`` and ``node`` (the node object).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> g = to_networkx(q.saliency(0).node, q.saliency(1).node)
    >>> g.number_of_nodes(), g.number_of_edges()
    (3, 2)
    """
    import networkx as nx  # optional at import time: only graphs need it

    graph = nx.DiGraph()
    for node in walk(roots):
        graph.add_node(node.token, op=node.op, label=label(node), node=node)
        for child in node.children:
            graph.add_edge(child.token, node.token)
    return graph
