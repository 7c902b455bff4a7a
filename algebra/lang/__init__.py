"""The query language: ``syntax`` (the tree), ``parse`` (text to tree, lark), ``unparse``
(expression to text) and ``errors`` (``QueryError``, ``QuerySyntaxError``). Binding a tree to
models and inputs is the API's job (:mod:`algebra.api.bind`)."""
