"""Self-test (``--verify``): the floor, Captum and ours give the same attributions."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from . import captum_runs, floor, ours
from .models import make_images, make_model
from .workloads import Workload

RTOL = 1e-4
ATOL = 1e-5  # times the largest magnitude of the floor's result


def _run_ours(model: torch.nn.Module, x: torch.Tensor, workload: Workload) -> dict[str, Any]:
    run, _ = ours.prepare(model, x, workload)
    return run()


def as_array(value: Any) -> np.ndarray:
    """A result as numpy in the floor's layout: ``(sample, [target,] ...)``.

    Parameters
    ----------
    value : torch.Tensor or xarray.DataArray
        One implementation's result for one request.

    Returns
    -------
    numpy.ndarray
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    leading = [d for d in ("sample", "target") if d in value.dims]
    return np.asarray(value.transpose(*leading, ...).values)


def compare(name: str, got: np.ndarray, want: np.ndarray) -> str | None:
    """Why ``got`` differs from ``want`` beyond the tolerance, or ``None`` when it agrees.

    Parameters
    ----------
    name : str
        Label for the message.
    got, want : numpy.ndarray
        The result under test and the reference.

    Returns
    -------
    str or None
    """
    if got.shape != want.shape:
        return f"{name}: shape {got.shape}, expected {want.shape}"
    scale = float(np.abs(want).max()) or 1.0
    if np.allclose(got, want, rtol=RTOL, atol=ATOL * scale):
        return None
    worst = float(np.abs(got - want).max()) / scale
    return f"{name}: max |difference| = {worst:.2e} of max |value|"


def verify(workloads: list[Workload], device: torch.device, log: Callable[[str], None]) -> bool:
    """Compare Captum and ours with the floor on every request of every workload.

    Parameters
    ----------
    workloads : list of Workload
        Use the ``--quick`` sizes: this runs each implementation once, unchunked work
        included.
    device : torch.device
        Where to run.
    log : callable
        Receives one line per comparison.

    Returns
    -------
    bool
        Whether everything agreed (an unavailable ours counts as a failure).
    """
    ok = True
    for workload in workloads:
        model = make_model(device, name=workload.model)
        x = make_images(workload.images, device, size=workload.image_size)
        want = {k: as_array(v) for k, v in floor.run(model, x, workload).items()}
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "captum": partial(captum_runs.run, model, x, workload),
            "ours": partial(_run_ours, model, x, workload),
        }
        for impl, run in runs.items():
            try:
                got = run()
            except Exception as exc:  # report and go on to the next implementation
                ok = False
                log(f"FAIL    {workload.name} {impl}: {type(exc).__name__}: {exc}".splitlines()[0])
                continue
            for key, reference in want.items():
                if key not in got:
                    problem: str | None = f"{key}: missing"
                else:
                    problem = compare(key, as_array(got[key]), reference)
                ok = ok and problem is None
                status = "ok" if problem is None else "FAIL"
                log(f"{status:<8}{workload.name} {impl} vs floor: {problem or key}")
    return ok
