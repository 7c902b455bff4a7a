"""The logical layer: immutable expression nodes, validated when built; no torch, no API.

``node`` (Node, Ref, tokens, the one graph walk, dispatch tables), ``model`` (what nodes
know of a model), ``views`` (source, edit, layer, window), ``attribution`` (the node and
the method registry), ``targets``, ``columns`` (per-sample predicates), ``relational``
(verbs), ``joins``, ``format`` (every one-line description) and ``graph`` (networkx).
"""
