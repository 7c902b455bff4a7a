"""The interactive page: i-Algebra's query interface in the browser (``ialgebra serve``).

A small ASGI app (Starlette, served by uvicorn: the optional extra ``ialgebra[web]``) over
the public API: the query language, ``ia.Session`` memos (one per browser tab), ``explain``
and the NeuroInspect calls. Starlette and uvicorn are imported only when the app is built
or served, so the rest of ialgebra never needs them. See ``docs/web.md``.
"""
