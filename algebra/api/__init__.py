"""The user-facing API: ``model`` (``ia.model``, ``Model``), ``query`` (the chainable
``Query`` and its methods), ``expr`` (``Expr`` and its verbs), ``bind`` (``ia.query``: query
text bound to models and inputs). Thin wrappers that build immutable IR nodes."""
