"""Ours: the same requests as one ialgebra query, computed together into xarray results."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .workloads import Workload


def _expressions(ia: Any, query: Any, workload: Workload) -> dict[str, Any]:
    if workload.single == "saliency":
        return {"saliency": query.saliency("pred")}
    if workload.single == "grad_cam":
        return {"grad_cam": query.layer("block3").grad_cam("pred")}
    exprs: dict[str, Any] = {}
    if workload.mixed:
        exprs["saliency"] = query.saliency("all")
        exprs["input_x_gradient"] = query.input_x_gradient("all")
        exprs["grad_cam"] = query.layer("block3").grad_cam("all")
    target = ia.topk(2) if workload.ig_target == "top2" else "pred"
    exprs["integrated_gradients"] = query.integrated_gradients(target, steps=workload.ig_steps)
    return exprs


def prepare(
    model: nn.Module, x: torch.Tensor, workload: Workload
) -> tuple[Callable[[], dict[str, Any]], Callable[[], str]]:
    """A function that runs the workload with ialgebra, and one that explains its plan.

    The model is wrapped once, outside the timed call (a user wraps it once per session);
    each call builds the query and expressions, then computes them in a fresh
    ``ia.Session`` so no repetition reads another's memo. A ``memo`` workload computes
    them once here, and each call asks the same session again: a memo hit.

    Parameters
    ----------
    model : torch.nn.Module
        The benchmark CNN.
    x : torch.Tensor
        Inputs ``[N, 3, 32, 32]``.
    workload : Workload
        What to compute.

    Returns
    -------
    run : callable
        Returns the dict of ``xarray.DataArray`` that ``ia.compute`` gives.
    explain : callable
        Returns ``ia.explain`` of the expressions.
    """
    import algebra as ia  # imported here so the Captum and floor runs work without it

    wrapped = ia.model(model, name="cnn3")

    def budget() -> contextlib.AbstractContextManager[Any]:
        if workload.memory_budget is None:
            return contextlib.nullcontext()
        return ia.set_options(memory_budget=workload.memory_budget)

    warm = ia.Session() if workload.memo else None

    def run() -> dict[str, Any]:
        exprs = _expressions(ia, wrapped.on(x), workload)
        with budget():
            return ia.compute(exprs, session=ia.Session() if warm is None else warm)

    if warm is not None:
        run()

    def explain() -> str:
        with budget():
            return ia.explain(_expressions(ia, wrapped.on(x), workload))

    return run, explain
