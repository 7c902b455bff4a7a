"""Run one workload through every implementation and gather JSON-ready numbers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import captum_runs, floor, ours
from .measure import Measurement, measure
from .models import make_images, make_model
from .workloads import Workload

IMPLEMENTATIONS = ("ours", "captum", "floor")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _impl_record(m: Measurement, workload: Workload) -> dict[str, Any]:
    median = m.median
    counts = m.counts
    within = None
    if workload.memory_budget is not None and m.peak_bytes is not None:
        within = m.peak_bytes <= workload.memory_budget
    return {
        "times_s": m.times,
        "median_s": median,
        "attributions_per_s": workload.attributions / median if median else None,
        "forward_calls": counts.forward_calls if counts else None,
        "forward_rows": counts.forward_rows if counts else None,
        "backward_calls": counts.backward_calls if counts else None,
        "peak_bytes": m.peak_bytes,
        "within_budget": within,
        "error": m.error,
    }


def run_workload(
    workload: Workload,
    device: torch.device,
    repeat: int,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> dict[str, Any]:
    """Measure ours, Captum and the floor on one workload.

    Parameters
    ----------
    workload : Workload
        What to compute.
    device : torch.device
        Where the model and inputs live.
    repeat : int
        Timed rounds (after one warm-up).
    log : callable
        Receives progress lines.
    verbose : bool
        Log ours' plan (``ia.explain``) once.

    Returns
    -------
    dict
        The workload's sizes, one record per implementation and the ratios
        ``speedup_vs_captum`` (captum/ours), ``ours_vs_floor`` (ours/floor),
        ``captum_vs_floor`` and ``ours_peak_over_budget``.
    """
    model = make_model(device, name=workload.model)
    x = make_images(workload.images, device, size=workload.image_size)
    impls: dict[str, Callable[[], Any]] = {
        "captum": lambda: captum_runs.run(model, x, workload),
        "floor": lambda: floor.run(model, x, workload),
    }
    ours_error = None
    try:
        run_ours, explain = ours.prepare(model, x, workload)
        impls = {"ours": run_ours, **impls}
        if verbose:
            log(explain())
    except Exception as exc:  # ours may be mid-rewrite: measure the others regardless
        ours_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log(f"  ours: unavailable: {ours_error}")

    measured = measure(impls, model, device, repeat, log=log)
    records = {name: _impl_record(m, workload) for name, m in measured.items()}
    if ours_error is not None:
        records = {
            "ours": {**_impl_record(Measurement(), workload), "error": ours_error},
            **records,
        }
    medians = {name: records[name]["median_s"] for name in IMPLEMENTATIONS}
    ours_peak = records["ours"]["peak_bytes"]
    return {
        "name": workload.name,
        "description": workload.description,
        "images": workload.images,
        "ig_steps": workload.ig_steps,
        "ig_target": workload.ig_target,
        "attributions": workload.attributions,
        "memory_budget": workload.memory_budget,
        "chunk_rows": workload.chunk_rows,
        "impls": records,
        "speedup_vs_captum": _ratio(medians["captum"], medians["ours"]),
        "ours_vs_floor": _ratio(medians["ours"], medians["floor"]),
        "captum_vs_floor": _ratio(medians["captum"], medians["floor"]),
        "ours_peak_over_budget": _ratio(ours_peak, workload.memory_budget),
    }
