"""The server's state and its plain-Python endpoints, JSON in and JSON or PNG out.

:class:`Server` holds the catalog, the open tabs (one ``ia.Session`` each), the worker
threads and the caches of thumbnails and bound samples. Its methods are what the ASGI app
(:mod:`algebra.web.app`) routes to; they take and return plain data, so they are tested
and timed without HTTP.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import algebra as ia

from ..lang.parse import parse_query
from ..lang.syntax import COLUMNS, KEYWORDS
from .catalog import Catalog
from .completion import complete, layer_text, methods
from .edits import compare, refine
from .failures import WebError, error_payload
from .jobs import Runner
from .png import colour_bar, image_png
from .requests import MAX_QUERY, MAX_SAMPLES, Selections, text_of
from .tabs import Tabs

MAX_PAGE = 200  # thumbnails listed per request
MAX_THUMBS = 4096  # thumbnails kept (about 1 KB each for 32 x 32 images)


@dataclass(frozen=True)
class Settings:
    """Limits and sizes of a server.

    ``max_tabs`` tabs, each with a memo of ``session_bytes``; ``workers`` jobs at once;
    ``max_body`` bytes per request.
    """

    max_tabs: int = 8
    session_bytes: int = 128 * 2**20
    workers: int = 2
    max_body: int = 64 * 2**10
    default_query: str = "select * from f(x)"


class Server:
    """The page's back end over a :class:`~algebra.web.catalog.Catalog`.

    Examples
    --------
    >>> import torch
    >>> from .catalog import DataSet
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> cat = Catalog({"net": ia.model(net, classes=["a", "b", "c"])},
    ...               {"d": DataSet("d", torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2]))})
    >>> server = Server(cat)
    >>> server.describe()["models"][0]["classes"]
    ['a', 'b', 'c']
    >>> server.samples({"data": "d", "model": "net"})["total"]
    6
    >>> server.close()
    """

    def __init__(self, catalog: Catalog, settings: Settings | None = None) -> None:
        self.catalog = catalog
        self.settings = settings or Settings()
        self.tabs = Tabs(self.settings.max_tabs, self.settings.session_bytes)
        self.runner = Runner(self.settings.workers)
        self.selections = Selections(catalog)
        # The sample browser's predictions, shared by every tab (the data do not change).
        self.columns = ia.Session(64 * 2**20)
        self._thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Cancel what runs and stop the workers.

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))})).close()
        """
        for tab_id in self.tabs.ids():
            self.tabs.get(tab_id).close()
        self.runner.close()

    def describe(self) -> dict[str, Any]:
        """What the page needs to start: models and their layers, data sets, methods with
        their parameters, the language's keywords and columns, defaults and limits.

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
        >>> d = s.describe(); d["defaults"]["model"], d["limits"]["query"], "shapley" in d["methods"]
        ('m', 4000, True)
        >>> s.close()
        """
        out = self.catalog.describe()
        out["methods"] = {name: list(params) for name, params in methods().items()}
        out["keywords"] = list(KEYWORDS)
        out["columns"] = list(COLUMNS)
        out["identity"] = ia.options.identity
        out["defaults"] = {
            "model": next(iter(self.catalog.models)),
            "data": next(iter(self.catalog.data)),
            "query": self.settings.default_query,
        }
        out["limits"] = {"query": MAX_QUERY, "samples": MAX_SAMPLES, "body": self.settings.max_body,
                         "tabs": self.settings.max_tabs, "session_bytes": self.settings.session_bytes}  # fmt: skip
        return out

    def thumbnail(self, data: str, index: int) -> bytes:
        """Sample ``index`` of a data set of images, as PNG (cached).

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(2, 3, 4, 4))}))
        >>> s.thumbnail("d", 1)[:4], s.thumbnail("d", 1) is s.thumbnail("d", 1)
        (b'\\x89PNG', True)
        >>> s.thumbnail("d", 2)
        Traceback (most recent call last):
        algebra.web.failures.WebError: index: 2 is not a sample of 'd' (0..1)
        >>> s.close()
        """
        dataset = self.catalog.dataset(data)
        if not 0 <= index < dataset.size:
            raise WebError(
                404, f"index: {index} is not a sample of {data!r} (0..{dataset.size - 1})"
            )
        if not dataset.images:
            raise WebError(404, f"data: {data!r} holds no images ([C, H, W] with 1 or 3 channels)")
        key = (data, index)
        with self._lock:
            if key in self._thumbs:
                self._thumbs.move_to_end(key)
                return self._thumbs[key]
        png = image_png(dataset.x[index].detach().cpu().float().numpy())
        with self._lock:
            png = self._thumbs.setdefault(key, png)
            while len(self._thumbs) > MAX_THUMBS:
                self._thumbs.popitem(last=False)
        return png

    @staticmethod
    @functools.cache
    def colour_bar(signed: bool) -> bytes:
        """The colour bar of signed (diverging) or one-sign (sequential) maps, as PNG.

        Examples
        --------
        >>> Server.colour_bar(True)[:4]
        b'\\x89PNG'
        """
        return colour_bar(signed)

    def samples(self, body: dict[str, Any]) -> dict[str, Any]:
        """A page of the sample browser: each sample's label, prediction and whether it is
        right, for the samples that pass the ``where`` clause of ``query`` (when given).

        Predictions come from a saliency query of the whole data set (at the model's last
        layer, which costs little more than a forward), and the filter from the same query
        with the ``where`` clause: the engine's own predicate, memoized across tabs.

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
        >>> s = Server(Catalog({"m": ia.model(net)}, {"d": DataSet("d", torch.rand(5, 4), torch.tensor([0, 1, 0, 1, 0]))}))
        >>> page = s.samples({"data": "d", "model": "m", "query": "select * from f(x) where id >= 3"})
        >>> page["total"], [item["id"] for item in page["items"]]
        (5, [3, 4])
        >>> s.close()
        """
        data = self.catalog.dataset(body.get("data"))
        model = self.catalog.model(body.get("model"))
        offset, limit = body.get("offset", 0), body.get("limit", 48)
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (offset, limit)
        ):
            raise WebError(400, "offset, limit: expected integers >= 0")
        whole = self.selections.whole(data.name)
        base, everything = self._predictions(model, whole)
        where, kept = None, everything
        text = body.get("query")
        if isinstance(text, str) and text.strip():
            predicate = parse_query(text_of(body)).predicate
            if predicate is not None:
                where = predicate.to_text()
                (kept,) = self.columns.compute(ia.query(f"{base} where {where}", f=model, x=whole))
        ids = [int(i) for i in kept["sample"].values]
        preds = everything["pred"].values
        labels = everything["label"].values if "label" in everything.coords else None
        classes = model.classes
        items = []
        for i in ids[offset : offset + min(limit, MAX_PAGE)]:
            pred = int(preds[i])
            label = None if labels is None else int(labels[i])
            items.append({
                "id": i, "pred": pred, "label": label,
                "pred_name": None if classes is None else classes[pred],
                "label_name": None if classes is None or label is None else classes[label],
                "correct": None if label is None else pred == label,
            })  # fmt: skip
        return {"data": data.name, "model": body["model"], "total": data.size,
                "matched": len(ids), "where": where, "items": items, "images": data.images}  # fmt: skip

    def _predictions(self, model: ia.Model, whole: ia.Query) -> tuple[str, Any]:
        """Every sample's prediction and label, as the coordinates of a saliency query: at
        the model's last layer when it has one (a small result, little backward), else at
        the input. Returns the query's text (to filter with) and its result."""

        def run(base: str) -> tuple[str, Any]:
            return base, self.columns.compute(ia.query(base, f=model, x=whole))[0]

        if model.layer_names:
            try:
                return run(f"select {layer_text(model.layer_names[-1])} from f(x) using saliency")
            except (ValueError, TypeError, RuntimeError):
                pass  # a last layer that is not the output's (or not a tensor): the input
        return run("select * from f(x) using saliency")

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        """Parse the query (no binding, nothing runs): its names and windows, or the
        syntax error with its line and column.

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
        >>> s.check({"query": "select * from f(x) join (select * from g(x'))"})["inputs"]
        ['x', "x'"]
        >>> s.check({"query": "select * form f(x)"})["error"]["column"]
        10
        >>> s.close()
        """
        text = text_of(body)
        try:
            tree = parse_query(text)
        except Exception as error:
            return {"ok": False, "error": error_payload(error)}
        return {
            "ok": True, "models": list(tree.model_names()), "inputs": list(tree.input_names()),
            "windows": [[w.r0, w.r1, w.c0, w.c1] for w in tree.windows],
            "layer": None if tree.layer is None else tree.layer.text, "neurons": tree.neurons,
            "canonical": tree.to_text(),
        }  # fmt: skip

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Completions at the cursor (see :func:`algebra.web.completion.complete`).

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
        >>> s.complete({"query": "select * from f(x) using sal", "cursor": 28, "models": {"f": "m"}})["options"]
        ['saliency']
        >>> s.close()
        """
        text = text_of(body)
        cursor = body.get("cursor", len(text))
        if not isinstance(cursor, int) or isinstance(cursor, bool):
            raise WebError(400, "cursor: expected the cursor's offset in the query (an integer)")
        models = body.get("models") or {}
        inputs = body.get("inputs") or []
        if not isinstance(models, dict) or not isinstance(inputs, list):
            raise WebError(400, "models, inputs: expected an object and a list of names")
        bound = {str(n): self.catalog.model(m) for n, m in models.items()}
        return complete(text, cursor, bound, [str(i) for i in inputs])

    def rewrite(self, body: dict[str, Any]) -> dict[str, Any]:
        """The query text after a gesture: ``{"window": [...]}`` (drill-down) or
        ``{"compare": "join" | "anti", "model": name}`` / ``{"compare": ..., "inputs": name}``.

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
        >>> s.rewrite({"query": "select * from f(x)", "window": [0, 4, 0, 4]})["query"]
        'select * from f(x) where [0, 4, 0, 4]'
        >>> s.close()
        """
        text = text_of(body)
        if "window" in body:
            return {"query": refine(text, body["window"])}
        if "compare" in body:
            return {"query": compare(text, body["compare"], body.get("model"), body.get("inputs"))}
        raise WebError(400, "rewrite: expected 'window' or 'compare'")

    def history(self, tab: str) -> dict[str, Any]:
        """The tab's queries, newest first, with their timings and memo hits.

        Examples
        --------
        >>> import torch
        >>> from .catalog import DataSet
        >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
        >>> s.history("tab-0001")
        {'history': [], 'memo': {'results': 0, 'bytes': 0, 'hits': 0, 'misses': 0}}
        >>> s.close()
        """
        t = self.tabs.get(tab)
        with t.lock:
            entries = list(t.history)
        s = t.session
        return {"history": entries,
                "memo": {"results": len(s), "bytes": s.nbytes, "hits": s.hits, "misses": s.misses}}  # fmt: skip
