"""Scale-out workloads: one ialgebra computation in process and on dask.

Variants, measured by :func:`benchmarks.measure.measure` (a warm-up call each, then
interleaved rounds rotating which goes first, medians):

- **in-process**: ``ia.compute(exprs, session=ia.Session())``, a fresh session each call;
- **N workers**: ``ia.compute(exprs, client=client)`` on a LocalCluster of N
  single-threaded worker processes, then ``dask.compute`` of the results (the models are
  sent to the workers in every call, as a fresh computation does);
- **threads** and **synchronous**: dask's local schedulers, no cluster.

Each timed call builds the query and expressions and returns the computed values. The
cluster starts once, outside the timings. Pass counts and peak memory are the driver's
(for dask, the first sample it runs to learn the results' structure).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from .measure import measure
from .models import make_images, make_model
from .workloads import ScaleOut


def _expressions(ia: Any, q: Any, workload: ScaleOut) -> dict[str, Any]:
    exprs = {"saliency": q.saliency(workload.saliency)}
    if workload.ig_steps:
        exprs["ig"] = q.integrated_gradients("pred", steps=workload.ig_steps)
    return exprs


def run_scaleout(
    workload: ScaleOut, device: torch.device, repeat: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Measure a scale-out workload in process and on dask.

    Parameters
    ----------
    workload : ScaleOut
        What to compute, and on how many workers.
    device : torch.device
        Where the driver's model and inputs live (workers use their own GPU, if any).
    repeat : int
        Timed rounds (after one warm-up).
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        The workload's sizes, the number of chunks, one record per variant (times,
        median, attributions per second, ``vs_in_process``: in-process time / this time,
        ``overhead_ms``: this time - in-process time) and the cluster's shape.
    """
    import dask
    from distributed import Client, LocalCluster

    import algebra as ia

    # In-memory inputs travel inside the task graph; distributed warns above 10 MB.
    warnings.filterwarnings("ignore", message=".*Sending large graph.*")
    model = make_model(device)
    x = make_images(workload.images, device)
    wrapped = ia.model(model, name="cnn3")

    def exprs() -> dict[str, Any]:
        return _expressions(ia, wrapped.on(x), workload)

    cluster = LocalCluster(
        n_workers=workload.workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    )
    workers = f"{workload.workers} workers"
    with cluster, Client(cluster, set_as_default=False) as client:
        impls: dict[str, Callable[[], Any]] = {
            "in-process": lambda: ia.compute(exprs(), session=ia.Session()),
            workers: lambda: dask.compute(ia.compute(exprs(), client=client), scheduler=client),
            "threads": lambda: dask.compute(
                ia.compute(exprs(), scheduler="threads"), scheduler="threads"
            ),
            "synchronous": lambda: dask.compute(
                ia.compute(exprs(), scheduler="synchronous"), scheduler="synchronous"
            ),
        }
        chunks = len(ia.compute(exprs(), client=client)["saliency"].chunks[0])
        threads = client.run(torch.get_num_threads)
        measured = measure(impls, model, device, repeat, log=log)
    base = measured["in-process"].median
    records = {}
    for name, m in measured.items():
        median = m.median
        records[name] = {
            "times_s": m.times,
            "median_s": median,
            "attributions_per_s": workload.attributions / median if median else None,
            "vs_in_process": base / median if base and median else None,
            "overhead_ms": 1000 * (median - base) if base and median else None,
            "driver_forward_rows": m.counts.forward_rows if m.counts else None,
            "error": m.error,
        }
    return {
        "name": workload.name,
        "description": workload.description,
        "kind": "scale-out",
        "images": workload.images,
        "attributions": workload.attributions,
        "workers": workload.workers,
        "worker_torch_threads": sorted(set(threads.values())),
        "driver_torch_threads": torch.get_num_threads(),
        "chunks": chunks,
        "impls": records,
    }


def format_scaleout(result: dict[str, Any]) -> str:
    """The result of :func:`run_scaleout` as a table.

    Parameters
    ----------
    result : dict

    Returns
    -------
    str
    """

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        f"{result['name']}: {result['description']}  ({result['attributions']} attributions, "
        f"{result['chunks']} chunks on {result['workers']} workers of "
        f"{result['worker_torch_threads']} torch thread(s); in process "
        f"{result['driver_torch_threads']})",
        f"{'variant':<13}{'median ms':>11}{'attr/s':>10}{'vs in-proc':>12}{'overhead ms':>13}",
    ]
    for name, r in result["impls"].items():
        median_ms = None if r["median_s"] is None else 1000 * r["median_s"]
        lines.append(
            f"{name:<13}{fmt(median_ms, '.1f'):>11}{fmt(r['attributions_per_s'], '.0f'):>10}"
            f"{fmt(r['vs_in_process'], '.2f'):>12}{fmt(r['overhead_ms'], '.1f'):>13}"
            + (f"  {r['error']}" if r["error"] else "")
        )
    return "\n".join(lines)
