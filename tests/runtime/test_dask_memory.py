"""A data set ten times the memory budget, attributed on a two-worker LocalCluster and
written to Zarr chunk by chunk: the peak memory of every process (each worker and the
driver) stays under the budget, and the result is complete.

Slow (about 40 s): a fresh interpreter runs the scenario (dask_memory_run.py),
so that the driver's peak is its own, and reports each process's peak resident memory
above where it stood before the run (the kernel's high-water mark, reset just before).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("zarr")

# Large enough that dask's own per-process costs (about 25 MiB a worker) do not decide it.
BUDGET = 128 * 2**20
FACTOR = 10


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's clear_refs")
def test_ten_times_the_budget_streams_to_zarr_under_the_budget(tmp_path):
    script = Path(__file__).with_name("dask_memory_run.py")
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(BUDGET), str(FACTOR)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["input_bytes"] >= FACTOR * BUDGET
    assert report["chunks"] >= 2 * FACTOR  # cut to fit, not one chunk per worker
    assert report["shape"] == [report["samples"], 256]
    assert report["finite"] and report["ends_agree"] and report["sample_ids"]
    assert len(report["rise"]) == 3
    for process, rise in report["rise"].items():
        assert 0 < rise < BUDGET, f"{process} peaked {rise / 2**20:.1f} MiB above its start"
