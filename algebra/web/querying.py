"""Running a query for a tab: bind it now (errors point at the text at once), compute it
on a worker in chunks of samples (progress, cancel), and render its heat maps.

The plan shown is ``ia.explain`` of the chunks' expressions in the tab's session, so it
says what will run and what the memo already holds; the timings and memo hits of every
query go to the tab's history.
"""

from __future__ import annotations

import io
import time
from typing import Any

import xarray as xr

import algebra as ia

from .failures import WebError
from .jobs import Job
from .render import render
from .requests import Request, build, chunks, request_of
from .server import Server
from .tabs import Tab


def submit(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """Start the query of ``body`` in its tab; returns ``{"job": id}`` at once. A query that
    does not parse or bind fails here, with the error's line and column.

    Examples
    --------
    >>> import torch
    >>> from .catalog import Catalog, DataSet
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> server = Server(Catalog({"net": ia.model(net)}, {"d": DataSet("d", torch.rand(4, 1, 4, 4))}))
    >>> body = {"tab": "tab-0001", "query": "select * from f(x) using saliency",
    ...         "models": {"f": "net"}, "inputs": {"x": {"data": "d", "ids": [0, 2]}}}
    >>> job = submit(server, body)["job"]
    >>> wait(server, "tab-0001", job)["state"]
    'done'
    >>> server.close()
    """
    tab = server.tabs.get(body.get("tab"))
    request = request_of(body, server.catalog)
    # Counterfactual neurons vote over all the mistakes at once: never split their samples.
    parts = [dict(request.inputs)] if request.tree.neurons else chunks(request)
    exprs = [build(request, server.catalog, server.selections, part) for part in parts]
    job = Job("query", request.text)
    tab.add(job)

    def work(job: Job) -> dict[str, Any]:
        return _run(job, tab, request, exprs, server)

    def finished(job: Job) -> None:
        extra = job.payload["stats"] if job.payload else {}
        tab.record(job, **extra)

    server.runner.submit(job, work, finished)
    return {"job": job.id, "chunks": len(exprs)}


def _plan(exprs: list[Any], tab: Tab) -> str:
    # ``explain`` reads the current session; entering it is one thread at a time (a session
    # keeps the tokens of its ``with`` blocks in order).
    with tab.planning, tab.session:
        if len(exprs) == 1:
            return exprs[0].explain()
        return ia.explain(*exprs)


def _run(job: Job, tab: Tab, request: Request, exprs: list[Any], server: Server) -> dict[str, Any]:
    job.step("plan", 0, len(exprs))
    plan = _plan(exprs, tab)
    session = tab.session
    hits = misses = 0
    results = []
    start = time.perf_counter()
    for i, expr in enumerate(exprs):
        job.check()
        job.step("compute", i, len(exprs))
        before = (session.hits, session.misses)
        if isinstance(expr, ia.DatasetExpr):
            results.append(expr.compute(session=session))
        else:
            results.append(session.compute(expr)[0])
        hits += session.hits - before[0]
        misses += session.misses - before[1]
    compute_ms = 1000 * (time.perf_counter() - start)
    job.step("render", len(exprs), len(exprs))
    result = results[0] if len(results) == 1 else xr.concat(results, dim="sample")
    stats = {"hits": hits, "misses": misses, "compute_ms": round(compute_ms, 1),
             "chunks": len(exprs)}  # fmt: skip
    payload: dict[str, Any] = {"query": request.text, "plan": plan, "stats": stats}
    if isinstance(result, xr.Dataset):
        from_neurons = _neurons_summary(result)
        payload["neurons"] = from_neurons
        job.kept = result
        return payload
    tree = request.tree
    data = {"left": request.inputs[tree.inputs.text].data}
    anti = [j for j in tree.joins if j.how == "anti"]
    if anti and anti[0].query.inputs.text in request.inputs:
        data["right"] = request.inputs[anti[0].query.inputs.text].data
    grid = "input" if tree.layer is None else f"layer {tree.layer.text}"
    shown = render(result, data, grid)
    job.pngs = shown.pngs
    job.kept = (result, data)
    payload["grid"] = shown.grid
    payload["panels"] = [
        {**panel, "png": f"/api/png/{tab.id}/{job.id}/{k}.png"}
        for k, panel in enumerate(shown.panels)
    ]
    payload["attrs"] = {
        k: v for k, v in result.attrs.items() if isinstance(v, (str, int, float, bool))
    }
    return payload


def _neurons_summary(result: xr.Dataset) -> dict[str, Any]:
    """Votes of counterfactual neurons as JSON: the ranked neurons of each kind."""
    votes = result["votes"]
    ranked = {}
    for kind in ("insufficient", "excessive"):
        names = [int(n) for n in result.attrs.get(kind, [])]
        ranked[kind] = [{"neuron": n, "votes": round(float(votes.sel(neuron=n, kind=kind)), 2)}
                        for n in names]  # fmt: skip
    return {
        "mistakes": int(result.attrs.get("mistakes", 0)),
        "flipped_percent": float(result.attrs.get("flipped_percent", 0.0)),
        "layer": str(result.attrs.get("layer", "")),
        "ranked": ranked,
        "samples": [int(i) for i in result["sample"].values] if "sample" in result.dims else [],
    }


def status(server: Server, tab: str, job: str) -> dict[str, Any]:
    """A job's state, progress and, once done, its result or error.

    Examples
    --------
    >>> import torch
    >>> from .catalog import Catalog, DataSet
    >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
    >>> status(s, "tab-0001", "999")
    Traceback (most recent call last):
    algebra.web.failures.WebError: job: no job '999' in this tab (only the last 8 are kept)
    >>> s.close()
    """
    return server.tabs.get(tab).job(job).snapshot()


def wait(server: Server, tab: str, job: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll a job until it ends (for scripts and tests; the page polls over HTTP).

    Examples
    --------
    >>> import torch
    >>> from .catalog import Catalog, DataSet
    >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
    >>> wait(s, "tab-0001", "1", timeout=0.1)
    Traceback (most recent call last):
    algebra.web.failures.WebError: job: no job '1' in this tab (only the last 8 are kept)
    >>> s.close()
    """
    end = time.perf_counter() + timeout
    while True:
        snap = status(server, tab, job)
        if snap["state"] not in ("queued", "running") or time.perf_counter() > end:
            return snap
        time.sleep(0.002)


def cancel(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """Ask a job to stop; it stops at its next step (a chunk of samples).

    Examples
    --------
    >>> import torch
    >>> from .catalog import Catalog, DataSet
    >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
    >>> cancel(s, {"tab": "tab-0001", "job": "3"})
    Traceback (most recent call last):
    algebra.web.failures.WebError: job: no job '3' in this tab (only the last 8 are kept)
    >>> s.close()
    """
    job = server.tabs.get(body.get("tab")).job(str(body.get("job")))
    job.cancel.set()
    return {"job": job.id, "state": job.state}


def png(server: Server, tab: str, job: str, index: int) -> bytes:
    """Panel ``index`` of a finished query's heat maps, as PNG.

    Examples
    --------
    >>> import torch
    >>> from .catalog import Catalog, DataSet
    >>> s = Server(Catalog({"m": ia.model(torch.nn.Linear(2, 2))}, {"d": DataSet("d", torch.rand(1, 2))}))
    >>> png(s, "tab-0001", "1", 0)
    Traceback (most recent call last):
    algebra.web.failures.WebError: job: no job '1' in this tab (only the last 8 are kept)
    >>> s.close()
    """
    found = server.tabs.get(tab).job(job)
    if not 0 <= index < len(found.pngs):
        raise WebError(404, f"panel: job {job} has {len(found.pngs)} panels; no panel {index}")
    return found.pngs[index]


def figure(server: Server, tab: str, job: str) -> bytes:
    """A finished query's result drawn by ``result.ia.plot`` over its images, as PNG (the
    figure to keep: titles, class names and a colour bar).

    Examples
    --------
    >>> import torch
    >>> from .catalog import Catalog, DataSet
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> server = Server(Catalog({"net": ia.model(net)}, {"d": DataSet("d", torch.rand(4, 1, 4, 4))}))
    >>> job = submit(server, {"tab": "tab-0001", "query": "select * from f(x) using saliency",
    ...     "models": {"f": "net"}, "inputs": {"x": {"data": "d", "ids": [1]}}})["job"]
    >>> _ = wait(server, "tab-0001", job); figure(server, "tab-0001", job)[:4]
    b'\\x89PNG'
    >>> server.close()
    """
    found = server.tabs.get(tab).job(job)
    if not isinstance(found.kept, tuple):
        raise WebError(404, f"figure: job {job} has no heat maps to draw")
    result, data = found.kept
    dataset = server.catalog.dataset(data["left"])
    images = dataset.x[[int(i) for i in result["sample"].values]] if dataset.images else None
    buffer = io.BytesIO()
    figure = result.ia.plot(images if "side" not in result.dims else None)
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
