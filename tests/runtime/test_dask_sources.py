"""Model.on over inputs read chunk by chunk: a torch Dataset or DataLoader, a dask array, an
xarray.DataArray. Without dask (no client, no scheduler) they are read whole and computed
in process, equal to the same inputs given as a tensor."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch
import xarray as xr
from torch.utils.data import DataLoader, Dataset, TensorDataset

import algebra as ia


@pytest.fixture
def data():
    x = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    y = torch.arange(12) % 5
    return x, y


class Pairs(Dataset):
    """Items as (numpy input, int label): collated by torch's default_collate."""

    def __init__(self, x, y):
        self.x, self.y = x.numpy(), y.tolist()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _sources(x, y):
    xd = da.from_array(x.numpy(), chunks=5)
    return {
        "dataset": dict(inputs=TensorDataset(x, y), batch_size=5),
        "pairs": dict(inputs=Pairs(x, y)),
        "loader": dict(inputs=DataLoader(TensorDataset(x, y), batch_size=4)),
        "dask": dict(inputs=xd, labels=da.from_array(y.numpy(), chunks=7)),
        "dask+numpy labels": dict(inputs=xd, labels=y.numpy()),
        "xarray": dict(
            inputs=xr.DataArray(
                xd, dims=("image", "channel", "y", "x"), coords={"label": ("image", y.numpy())}
            )
        ),
    }


KINDS = ["dataset", "pairs", "loader", "dask", "dask+numpy labels", "xarray"]


@pytest.mark.parametrize("kind", KINDS)
def test_lazy_inputs_compute_in_process_like_a_tensor(cnn, data, kind):
    x, y = data
    m = ia.model(cnn)
    q = m.on(**_sources(x, y)[kind])
    assert q.node.shape == tuple(x.shape) and q.node.labels is not None
    exprs = lambda q: (  # noqa: E731
        q.saliency("label"),
        q.layer("conv2").grad_cam("pred"),
        q.integrated_gradients(ia.topk(2), steps=4).groupby("label").mean(),
    )
    ref = ia.compute(*exprs(m.on(x, labels=y)))
    got = ia.compute(*exprs(q))
    for a, b in zip(got, ref, strict=True):
        xr.testing.assert_allclose(a, b)
        assert a.dims == b.dims and type(a.data) is np.ndarray


def test_xarray_dims_ids_and_labels_come_along(cnn, data):
    x, y = data
    ids = [f"img{i}" for i in range(12)]
    arr = xr.DataArray(
        da.from_array(x.numpy(), chunks=4),
        dims=("image", "band", "row", "col"),
        coords={"image": ids, "truth": ("image", y.numpy())},
    )
    q = ia.model(cnn).on(arr, labels="truth")
    r = q.saliency("label").compute()
    assert r.dims == ("sample", "band", "row", "col")
    assert r.sample.values.tolist() == ids and r.label.values.tolist() == y.tolist()
    # An in-memory DataArray is an ordinary batch, labelled the same way.
    inside = ia.model(cnn).on(arr.compute(), labels="truth").saliency("label").compute()
    xr.testing.assert_allclose(inside, r)
    with pytest.raises(ValueError, match="labels: the DataArray has no coordinate 'truht'"):
        ia.model(cnn).on(arr, labels="truht")


def test_explain_needs_only_the_shape(cnn, data):
    x, _ = data

    class Untouchable(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            if i > 0:  # the first item is read once, for the shape
                raise AssertionError("explain read the data")
            return x[0]

    text = ia.model(cnn).on(Untouchable()).saliency(0).explain()
    assert "inputs [12, 3, 8, 8]" in text and "total: 1 forward (12 rows)" in text


def test_bad_lazy_inputs_are_refused_early(cnn, data):
    x, y = data
    m = ia.model(cnn)
    with pytest.raises(ValueError, match="DataLoader shuffles"):
        m.on(DataLoader(TensorDataset(x), shuffle=True))
    with pytest.raises(TypeError, match="batch_size: only for a torch Dataset"):
        m.on(x, batch_size=4)
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1"):
        m.on(TensorDataset(x), batch_size=0)
    with pytest.raises(
        TypeError, match=r"the Dataset's items are torch.float64.*\.to\(torch.float32\)"
    ):
        m.on(TensorDataset(x.double()))
    with pytest.raises(TypeError, match="labels: a Dataset's labels come with its items"):
        m.on(TensorDataset(x), labels=y)
    with pytest.raises(TypeError, match="expected a floating-point array; got dtype int64"):
        m.on(da.zeros((4, 3, 8, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="labels: expected 12 labels"):
        m.on(da.from_array(x.numpy()), labels=da.zeros(11, dtype=int))
    with pytest.raises(TypeError, match="labels: expected integers"):
        m.on(da.from_array(x.numpy()), labels=da.zeros(12))
    with pytest.raises(ValueError, match="shape is unknown"):
        m.on(da.from_array(x.numpy())[da.from_array(y.numpy()) > 1])


def test_lazy_results_are_not_memoized(cnn, data):
    # What a Dataset returns is not part of its token: each compute reads it again.
    x, y = data
    reads = []

    class Counting(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            reads.append(i)
            return x[i], y[i]

    q = ia.model(cnn).on(Counting())
    s = ia.Session()
    reads.clear()
    s.compute(q.saliency(0))
    s.compute(q.saliency(0))
    assert len(reads) == 24 and len(s) == 0
