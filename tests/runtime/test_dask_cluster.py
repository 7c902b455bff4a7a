"""ia.compute(..., client=...) on a LocalCluster of two worker processes: results equal the
in-process ones, the models reach each worker once, and a worker killed mid-run has its
chunks retried by dask. One cluster for the module (starting one takes seconds)."""

from __future__ import annotations

import collections
import gc
import os
import signal
import sys
import time

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn
from torch.utils.data import Dataset

import algebra as ia

distributed = pytest.importorskip("distributed")

N = 16


@pytest.fixture(scope="module")
def client():
    # Classes defined here reach the workers by value (they cannot import this module).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="2GiB",
        dashboard_address=None,
    )
    with cluster, distributed.Client(cluster) as c:
        yield c
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(autouse=True)
def four_chunks(monkeypatch):
    # As if there were four workers: every run has several chunks per worker.
    monkeypatch.setattr("algebra.runtime.distributed._parallel", lambda client, scheduler: 4)


class Logged(nn.Module):
    """A model that notes, in a file, each process it is unpickled in."""

    def __init__(self, net: nn.Module, log: str):
        super().__init__()
        self.net = net
        self.log = log

    def forward(self, x):
        return self.net(x)

    def __setstate__(self, state):
        super().__setstate__(state)
        with open(state["log"], "a") as f:
            f.write(f"{os.getpid()}\n")


class Fragile(Dataset):
    """Pairs; reading item ``at`` in a worker kills that worker's process, the first time."""

    def __init__(self, x, y, marker: str, at: int):
        self.x, self.y, self.marker, self.at = x, y, marker, at

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == self.at and not os.path.exists(self.marker):
            try:
                distributed.get_worker()
            except ValueError:  # not in a worker
                pass
            else:
                open(self.marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
        return self.x[i], self.y[i]


@pytest.fixture
def data():
    x = torch.rand(N, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 5, (N,), generator=torch.Generator().manual_seed(2))
    x2 = torch.rand(N, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return x, y, x2


def test_cluster_results_equal_in_process(client, cnn_factory, data, reduced_close):
    x, y, x2 = data
    model = ia.model(cnn_factory().double(), classes=["cat", "dog", "bird", "fish", "snake"])
    q, q2 = model.on(x, labels=y), model.on(da.from_array(x2.numpy(), chunks=5))
    exprs = {
        "saliency": q.saliency("pred"),
        "integrated_gradients": q.integrated_gradients(ia.topk(2), steps=8),
        "grad_cam": q.layer("relu2").grad_cam("label"),
        "window": q.window(2, 6, 0, 4).input_x_gradient("pred"),
        "join": q.saliency(1).join(q2.saliency(1), how="min"),
        "groupby": q.window(0, 4, 0, 4).saliency("label").groupby("label").mean(),
    }
    ref = ia.compute({k: e for k, e in exprs.items() if k != "join"})
    ref["join"] = ia.compute(q.saliency(1).join(model.on(x2).saliency(1), how="min"))[0]
    got = ia.compute(exprs, client=client)
    assert all(isinstance(r.data, da.Array) for r in got.values())
    assert len(got["saliency"].chunks[0]) == 4
    (computed,) = dask.compute(got)
    for name, result in computed.items():
        if name == "groupby":
            inner = q.window(0, 4, 0, 4).saliency("label").abs().groupby("label").mean()
            reduced_close(result, ref[name], ia.compute(inner)[0])
        else:
            xr.testing.assert_identical(result, ref[name])


def test_models_reach_each_worker_once(client, cnn_factory, data, tmp_path):
    x, _, _ = data
    log = tmp_path / "unpickled.txt"
    net = Logged(cnn_factory().double(), str(log)).eval()
    q = ia.model(net).on(x)
    exprs = [q.saliency(0), q.saliency(1).mean("sample"), q.input_x_gradient("pred")]
    results = ia.compute(*exprs, client=client)
    dask.compute(*results)
    dask.compute(*results)  # computed again: the workers hold the models already
    workers = set(client.run(os.getpid).values())
    pids = collections.Counter(int(line) for line in log.read_text().split())
    assert set(pids) == workers and set(pids.values()) == {1}, pids
    assert os.getpid() not in pids  # the driver keeps its own model, unpickled nowhere here

    def plugins(dask_worker):
        return [name for name in dask_worker.plugins if name.startswith("ialgebra-")]

    assert all(client.run(plugins).values())
    del results
    gc.collect()  # the results' graphs are gone: so are the models on the workers
    deadline = time.time() + 10
    while any(client.run(plugins).values()) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(client.run(plugins).values())


def test_a_failing_chunk_names_its_samples_on_the_cluster(client, cnn_factory):
    x = np.random.default_rng(0).random((N, 3, 8, 8))
    x[6, 1, 2, 3] = np.inf
    q = ia.model(cnn_factory().double()).on(da.from_array(x, chunks=4))
    (r,) = ia.compute(q.saliency(0), client=client)
    with pytest.raises(ValueError, match=r"samples 4:8 \(ids 4, 5, 6, 7\): inputs: 1 value"):
        r.compute()


def test_progress_bar_on_the_cluster(client, cnn_factory, data, capsys):
    x, y, _ = data
    q = ia.model(cnn_factory().double()).on(x, labels=y)
    (r,) = ia.compute(q.saliency("label"), client=client, progress=True)
    # distributed's text bar is redrawn every 100 ms and erased when done: a bar was drawn,
    # and everything had finished when ia.compute returned.
    assert "% Completed" in capsys.readouterr().out
    assert all(f.status == "finished" for f in distributed.futures_of(r))
    xr.testing.assert_identical(r.compute(), ia.compute(q.saliency("label"))[0])


def test_a_killed_worker_has_its_chunks_retried(client, cnn_factory, data, tmp_path):
    # Runs last: the cluster has to start a new worker process afterwards.
    x, y, _ = data
    marker = tmp_path / "killed"
    model = ia.model(cnn_factory().double())
    fragile = model.on(Fragile(x, y, str(marker), at=11))
    before = set(client.run(os.getpid).values())
    r, g = ia.compute(
        fragile.saliency("label"), fragile.saliency(0).groupby("label").sum(), client=client
    )
    computed = r.compute()
    assert marker.exists()  # a worker died reading sample 11
    ref, ref_g = ia.compute(
        model.on(x, labels=y).saliency("label"),
        model.on(x, labels=y).saliency(0).groupby("label").sum(),
    )
    xr.testing.assert_identical(computed, ref)
    xr.testing.assert_allclose(g.compute(), ref_g, rtol=1e-12)
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != before  # a new process took its place
