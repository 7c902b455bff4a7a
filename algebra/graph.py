"""The expression graph as a ``networkx.DiGraph``."""

from __future__ import annotations

import networkx as nx

from .nodes import Node


def label(node: Node) -> str:
    """A short human-readable label for a node.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4))
    >>> label(q.node)
    "source(model='lin', inputs=[2, 4])"
    """
    from .operators import Attribution, Layer, Source

    if isinstance(node, Source):
        return f"source(model={node.wrapped_model.name!r}, inputs={list(node.shape)})"
    if isinstance(node, Layer):
        return f"layer({node.name!r})"
    if isinstance(node, Attribution):
        from .planner import describe

        return describe(node, with_layer=False)
    return node.op


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
    graph = nx.DiGraph()
    for root in roots:
        for node in root.walk():
            graph.add_node(node.token, op=node.op, label=label(node), node=node)
            for child in node.children:
                graph.add_edge(child.token, node.token)
    return graph
