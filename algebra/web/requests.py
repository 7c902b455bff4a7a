"""A query request from the page, checked: the text, and what its names are bound to.

The page sends JSON: ``{"query": text, "models": {"f": "cnn"}, "inputs": {"x": {"data":
"digits", "ids": [3, 7]}}}``. Models and data sets are named from the catalog, samples by
their index in the data set; nothing else can be bound. Limits keep one request small:
:data:`MAX_QUERY` characters of query text and :data:`MAX_SAMPLES` samples per input name.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import algebra as ia

from ..lang.parse import parse_query
from ..lang.syntax import Select
from .catalog import Catalog
from .failures import WebError

MAX_QUERY = 4000
MAX_SAMPLES = 64
CHUNK = 8  # samples computed at a time: progress is reported, and a cancel honoured, between


@dataclass(frozen=True)
class Selection:
    """Samples ``ids`` of the data set ``data`` (indices into it)."""

    data: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Request:
    """A checked query request: the parsed tree and its bindings by catalog name."""

    text: str
    tree: Select
    models: dict[str, str]
    inputs: dict[str, Selection]


def text_of(body: dict[str, Any]) -> str:
    """The query text of a request body, within :data:`MAX_QUERY` characters.

    Examples
    --------
    >>> text_of({"query": "select * from f(x)"})
    'select * from f(x)'
    >>> text_of({"query": "x" * 5000})
    Traceback (most recent call last):
    algebra.web.failures.WebError: query: 5000 characters; at most 4000 are accepted
    """
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        raise WebError(400, "query: expected the query text (a non-empty string)")
    if len(text) > MAX_QUERY:
        raise WebError(413, f"query: {len(text)} characters; at most {MAX_QUERY} are accepted")
    return text


def _ids(value: Any, name: str, size: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise WebError(400, f"inputs: {name!r}: expected a non-empty list of sample indices")
    if len(value) > MAX_SAMPLES:
        raise WebError(
            413, f"inputs: {name!r}: {len(value)} samples; at most {MAX_SAMPLES} per query"
        )
    for i in value:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < size:
            raise WebError(
                400,
                f"inputs: {name!r}: {i!r} is not a sample index of the data set (0..{size - 1})",
            )
    if len(set(value)) != len(value):
        raise WebError(400, f"inputs: {name!r}: a sample is selected twice")
    return tuple(value)


def request_of(body: dict[str, Any], catalog: Catalog) -> Request:
    """Check a query request against the catalog (the text is parsed here; binding comes
    later, with its own errors pointing at the text).

    Examples
    --------
    >>> import torch
    >>> from .catalog import DataSet
    >>> cat = Catalog({"m": ia.model(torch.nn.Linear(4, 2).eval())}, {"d": DataSet("d", torch.rand(5, 4))})
    >>> r = request_of({"query": "select * from f(x)", "models": {"f": "m"},
    ...                 "inputs": {"x": {"data": "d", "ids": [0, 3]}}}, cat)
    >>> r.models, r.inputs["x"]
    ({'f': 'm'}, Selection(data='d', ids=(0, 3)))
    >>> request_of({"query": "select * from f(x)", "models": {"f": "m"},
    ...             "inputs": {"x": {"data": "d", "ids": [9]}}}, cat)
    Traceback (most recent call last):
    algebra.web.failures.WebError: inputs: 'x': 9 is not a sample index of the data set (0..4)
    """
    text = text_of(body)
    tree = parse_query(text)
    models, inputs = body.get("models", {}), body.get("inputs", {})
    if not isinstance(models, dict) or not isinstance(inputs, dict):
        raise WebError(400, "models, inputs: expected objects of query name -> catalog entry")
    bound_models = {}
    for name, entry in models.items():
        if name in tree.model_names():
            catalog.model(entry)
            bound_models[str(name)] = entry
    bound_inputs = {}
    for name, entry in inputs.items():
        if name not in tree.input_names():
            continue
        if not isinstance(entry, dict):
            raise WebError(400, f"inputs: {name!r}: expected {{'data': name, 'ids': [...]}}")
        data = catalog.dataset(entry.get("data"))
        bound_inputs[str(name)] = Selection(data.name, _ids(entry.get("ids"), name, data.size))
    return Request(text, tree, bound_models, bound_inputs)


class Selections:
    """Bound queries of selected samples, kept so that the same selection is the same
    tensor: the session memo knows inputs by identity, so a repeated query hits it.

    Examples
    --------
    >>> import torch
    >>> from .catalog import DataSet
    >>> cat = Catalog({"m": ia.model(torch.nn.Linear(4, 2).eval())}, {"d": DataSet("d", torch.rand(5, 4))})
    >>> s = Selections(cat)
    >>> s.query(Selection("d", (1, 2))) is s.query(Selection("d", (1, 2)))
    True
    """

    def __init__(self, catalog: Catalog, max_items: int = 512) -> None:
        self.catalog = catalog
        self.max_items = max_items
        self._items: OrderedDict[Selection, ia.Query] = OrderedDict()
        self._lock = threading.Lock()
        self._model = next(iter(catalog.models.values()))  # any: binding swaps the model

    def query(self, selection: Selection) -> ia.Query:
        """The samples as ``model.on(inputs, labels=..., ids=...)`` (ids: indices).

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> cat = Catalog({"m": ia.model(torch.nn.Linear(4, 2).eval())}, {"d": DataSet("d", torch.rand(5, 4))})
        >>> Selections(cat).query(Selection("d", (4, 0)))
        Query(Linear on inputs [2, 4])
        """
        with self._lock:
            if selection in self._items:
                self._items.move_to_end(selection)
                return self._items[selection]
        data = self.catalog.dataset(selection.data)
        rows = list(selection.ids) if selection.ids else list(range(data.size))
        labels = None if data.labels is None else data.labels[rows]
        q = self._model.on(data.x[rows], labels=labels, ids=rows)
        with self._lock:
            q = self._items.setdefault(selection, q)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return q

    def whole(self, data: str) -> ia.Query:
        """Every sample of a data set (``ids`` 0..N-1).

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> cat = Catalog({"m": ia.model(torch.nn.Linear(4, 2).eval())}, {"d": DataSet("d", torch.rand(5, 4))})
        >>> Selections(cat).whole("d")
        Query(Linear on inputs [5, 4])
        """
        return self.query(Selection(self.catalog.dataset(data).name, ()))


def chunks(request: Request) -> list[dict[str, Selection]]:
    """The inputs split into chunks of :data:`CHUNK` samples, the same positions of every
    input name together (pairs of a join stay pairs); one chunk when their sizes differ.

    Examples
    --------
    >>> r = Request("", None, {}, {"x": Selection("d", tuple(range(20)))})
    >>> [c["x"].ids[0] for c in chunks(r)], [len(c["x"].ids) for c in chunks(r)]
    ([0, 8, 16], [8, 8, 4])
    """
    sizes = {len(s.ids) for s in request.inputs.values()}
    if len(sizes) != 1:
        return [dict(request.inputs)]
    size = sizes.pop()
    return [
        {
            name: Selection(s.data, s.ids[start : start + CHUNK])
            for name, s in request.inputs.items()
        }
        for start in range(0, size, CHUNK)
    ]


def build(request: Request, catalog: Catalog, selections: Selections, chunk: dict) -> Any:
    """The lazy expression of ``request`` on one chunk of its inputs (``ia.query``).

    Examples
    --------
    >>> import torch
    >>> from .catalog import DataSet
    >>> cat = Catalog({"m": ia.model(torch.nn.Linear(4, 2).eval())}, {"d": DataSet("d", torch.rand(5, 4))})
    >>> r = request_of({"query": "select * from f(x) using saliency", "models": {"f": "m"},
    ...                 "inputs": {"x": {"data": "d", "ids": [0, 3]}}}, cat)
    >>> build(r, cat, Selections(cat), chunks(r)[0]).compute().sample.values.tolist()
    [0, 3]
    """
    bindings: dict[str, Any] = {n: catalog.model(m) for n, m in request.models.items()}
    bindings.update({n: selections.query(s) for n, s in chunk.items()})
    return ia.query(request.text, **bindings)
