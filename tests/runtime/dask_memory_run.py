"""A data set of ``factor`` times the memory budget, attributed on a two-worker LocalCluster
and written to Zarr; prints, as JSON, the peak memory of each process above where it stood
before the run (run by test_dask_memory.py in a fresh interpreter).

Peak resident memory is the kernel's own account (``VmHWM`` in ``/proc/self/status``),
reset to the current resident size just before the run by writing ``5`` to
``/proc/self/clear_refs``: every allocation counts (torch's, NumPy's, Zarr's, dask's), and
no sampling can miss a short peak. Each process is warmed up first (imports, Zarr, the
model) so that what is measured is the run's working memory.

Usage: python dask_memory_run.py OUT_DIR BUDGET_BYTES FACTOR
"""

from __future__ import annotations

import json
import sys
import time

import dask.array as da
import numpy as np
import torch
import xarray as xr
from distributed import Client, LocalCluster
from torch import nn

import algebra as ia

FEATURES = 256


def status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset() -> int:
    """Reset the peak to the current resident size; that size."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status()["VmRSS"]


def main(out: str, budget: int, factor: int) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(FEATURES, 64), nn.Tanh(), nn.Linear(64, 10)).eval()
    n = factor * budget // (FEATURES * 4)  # float32 inputs: factor x the budget
    rng = da.random.default_rng(0)
    x = rng.standard_normal((n, FEATURES), chunks=(1024, FEATURES), dtype=np.float32)
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="2GiB",
        dashboard_address=None,
    )
    client = Client(cluster)
    m = ia.model(net)
    with ia.set_options(memory_budget=budget):
        for _ in range(2):  # warm-up: imports (Zarr's too), the model and a few chunks
            (w,) = ia.compute(m.on(x[:8192]).saliency("pred"), client=client)
            w.to_zarr(f"{out}/warm.zarr", mode="w")
        workers = client.run(reset)
        driver = reset()
        start = time.perf_counter()
        (r,) = ia.compute(m.on(x).saliency("pred"), client=client)
        r.to_zarr(f"{out}/result.zarr", mode="w")
        seconds = time.perf_counter() - start
    peaks = client.run(status)
    rise = {f"worker {i}": peaks[w]["VmHWM"] - workers[w] for i, w in enumerate(sorted(workers))}
    rise["driver"] = status()["VmHWM"] - driver
    back = xr.open_dataarray(f"{out}/result.zarr", engine="zarr", chunks={})
    ends = [slice(0, 512), slice(n - 512, n)]
    agree = all(
        np.allclose(
            back[part].values,
            m.on(x[part].compute()).saliency("pred").compute().values,
            rtol=1e-5,
            atol=1e-7,
        )
        for part in ends
    )
    report = {
        "budget": budget,
        "samples": n,
        "input_bytes": n * FEATURES * 4,
        "chunks": len(r.chunks[0]),
        "rows": r.chunks[0][0],
        "seconds": round(seconds, 2),
        "rise": rise,
        "shape": list(back.shape),
        "finite": bool(np.isfinite(back.data).all().compute()),
        "ends_agree": agree,
        "sample_ids": bool((back.sample.values == np.arange(n)).all()),
    }
    client.close()
    cluster.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
