"""ia.compute on dask's local schedulers (no cluster): the same results as in process,
dask-backed and lazy; reductions over samples from partial sums; what chunks cannot do is
refused by name; a failing chunk names its samples; progress bars; Zarr."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import algebra as ia

# The processes scheduler starts worker processes (seconds): marked slow.
SCHEDULERS = ["synchronous", "threads", pytest.param("processes", marks=pytest.mark.slow)]
N = 16


@pytest.fixture(autouse=True)
def four_chunks(monkeypatch):
    # Samples are shared among the workers (and cut further only to fit the memory
    # budget): as if there were four, so every test runs several chunks.
    monkeypatch.setattr("algebra.runtime.distributed._parallel", lambda client, scheduler: 4)


@pytest.fixture
def cnn64(cnn_factory):
    # float64: per-sample results do not depend on the batch they are computed in.
    return cnn_factory().double()


@pytest.fixture
def model(cnn64):
    return ia.model(cnn64, classes=["cat", "dog", "bird", "fish", "snake"])


@pytest.fixture
def q(model):
    x = torch.rand(N, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 5, (N,), generator=torch.Generator().manual_seed(2))
    return model.on(x, labels=y)


@pytest.fixture
def q2(model):
    x = torch.rand(N, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return model.on(x)


def per_sample(q, q2):
    """Several methods and an i-Algebra composition, each with one row per sample."""
    return {
        "saliency": q.saliency("pred"),
        "input_x_gradient": q.input_x_gradient(ia.topk(2)),
        "integrated_gradients": q.integrated_gradients("label", steps=8),
        "grad_cam": q.layer("relu2").grad_cam("all"),
        "window": q.window(2, 6, 2, 6).saliency("pred"),
        "join": q.saliency(0).join(q2.saliency(0)),
        "antijoin": q.antijoin(q2, "pred", "integrated_gradients", steps=4),
        "verbs": q.saliency("all").sel(target=[1, 3]).normalize().abs(),
        # Arguments with one row per sample are cut with the samples.
        "per_sample_target": q.saliency([i % 5 for i in range(N)]),
        "per_sample_baseline": q.integrated_gradients(0, steps=4, baseline=_rows(3, 8, 8)),
        "per_sample_patch": q.patch((0, 4, 0, 4), _rows(3, 4, 4)).input_x_gradient(2),
    }


def _rows(*shape):
    return torch.rand(N, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))


def reductions(q):
    return {
        "mean": q.saliency("pred").mean("sample"),
        "sum_all": q.input_x_gradient(1).sum(),
        "groupby": q.saliency("label").groupby("label").mean(),
        "filtered_groupby": q.where(ia.col.correct).saliency("pred").groupby("pred").sum(),
        "after": q.saliency(0).mean("sample").sel(channel=1).normalize(),
        "per_sample_target": q.saliency([i % 5 for i in range(N)]).groupby("label").mean(),
    }


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_per_sample_results_equal_in_process_exactly(q, q2, scheduler):
    exprs = per_sample(q, q2)
    ref = ia.compute(exprs)
    got = ia.compute(exprs, scheduler=scheduler)
    for name, result in got.items():
        assert isinstance(result.data, da.Array), name
        assert len(result.chunks[result.dims.index("sample")]) == 4, name
        assert isinstance(result["pred"].data, da.Array), name  # per-sample coords are lazy
    # Computed together, the results share each chunk's passes.
    (computed,) = dask.compute(got, scheduler=scheduler)
    for name, result in computed.items():
        xr.testing.assert_identical(result, ref[name])


@pytest.mark.parametrize("scheduler", SCHEDULERS[:2])
def test_reductions_over_samples_from_partial_sums(q, scheduler, reduced_close):
    exprs = reductions(q)
    ref = ia.compute(exprs)
    magnitude = ia.compute({k: _abs_reduction(e) for k, e in exprs.items() if k != "after"})
    got = ia.compute(exprs, scheduler=scheduler)
    (computed_all,) = dask.compute(got, scheduler=scheduler)
    for name, computed in computed_all.items():
        assert isinstance(got[name].data, da.Array)
        if name == "after":  # normalized: relative to its own maximum
            xr.testing.assert_allclose(computed, ref[name], rtol=1e-12)
        else:
            reduced_close(computed, ref[name], magnitude[name])
        assert computed.attrs == ref[name].attrs


def _abs_reduction(expr):
    # The same reduction of |what is reduced|: the scale of a summation-order difference.
    node = expr.node
    inner = ia.Expr(node.child).abs()
    if node.op == "groupby":
        return getattr(inner.groupby(node.key), node.how)()
    return getattr(inner, node.how)(node.dims and list(node.dims))


def test_reductions_do_not_gather_the_attributions(q, monkeypatch):
    # For a reduction, a chunk's task returns partial sums without a sample dim, not the
    # chunk's attributions.
    from algebra.runtime import chunks
    from algebra.runtime.reductions import Partial

    returned = []
    real = chunks.run_chunk

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        returned.extend(out.values())
        return out

    monkeypatch.setattr("algebra.runtime.distributed.run_chunk", spy)
    mean, _ = ia.compute(
        q.saliency(0).mean("sample"), q.saliency(0).groupby("label").sum(), scheduler="threads"
    )
    mean.compute()
    assert len(returned) >= 8
    assert all(isinstance(v, Partial) and "sample" not in v.frame.dims for v in returned)


def test_results_are_lazy_until_asked(q, counting):
    net = counting(q.node.model.torch_module)
    lazy_q = ia.model(net).on(q.node.inputs.value)
    (r,) = ia.compute(lazy_q.saliency("pred"), scheduler="synchronous")
    assert net.calls == 1  # the first sample, for the results' structure
    r.persist(scheduler="synchronous")
    assert net.calls == 1 + len(r.chunks[0])


def test_zarr_written_chunk_by_chunk(q, tmp_path):
    (r,) = ia.compute(q.input_x_gradient(ia.topk(2)), scheduler="threads")
    r.to_zarr(tmp_path / "r.zarr")
    back = xr.open_dataarray(tmp_path / "r.zarr", engine="zarr", chunks={})
    assert back.chunks == r.chunks  # one Zarr chunk per dask chunk: written piecewise
    xr.testing.assert_identical(back.load(), ia.compute(q.input_x_gradient(ia.topk(2)))[0])


def test_chunks_hold_whole_blocks_of_a_dask_array(model, monkeypatch):
    # A budget that fits 6 samples a chunk, over inputs in blocks of 4: chunks of 4, so
    # that no block is read by two chunks (and kept alive between them).
    monkeypatch.setattr("algebra.runtime.distributed._parallel", lambda client, scheduler: 1)
    x = da.from_array(np.random.default_rng(0).random((N, 3, 8, 8)), chunks=(4, 3, 8, 8))
    budget = 2 * 6 * 8 * 2 * x[0].nbytes  # eight copies of a sample's inputs and its map
    with ia.set_options(memory_budget=budget):
        uneven = model.on(x.rechunk({0: (5, 3, 8)})).saliency("pred")
        (alone,) = ia.compute(uneven, scheduler="synchronous")  # cut by the budget alone
        (r,) = ia.compute(model.on(x).saliency("pred"), scheduler="synchronous")
    assert 4 < alone.chunks[0][0] < 8
    assert r.chunks[0] == (4, 4, 4, 4)


def test_the_driver_holds_no_array_of_sample_positions(q):
    (r,) = ia.compute(q.saliency("pred"), scheduler="synchronous")
    assert isinstance(r.indexes["sample"], pd.RangeIndex)  # O(1), however many samples
    assert r.sample.dtype == np.int64
    xr.testing.assert_identical(r.compute(), ia.compute(q.saliency("pred"))[0])


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda q: q.where(ia.col.correct).saliency(0), "where: on dask"),
        (lambda q: q.saliency(0).isel(sample=[0, 3]), r"isel: selecting samples \(sample=...\)"),
        (lambda q: q.saliency(0).sel(sample=5), r"sel: selecting samples"),
        (lambda q: q.saliency(0).normalize(dim="sample"), "normalize: over the sample dim"),
        (lambda q: q.saliency(0).topk_features(2, dim=["sample", "x"]), "topk_features: over"),
        (
            lambda q: q.saliency(0).mean("sample").join(q.saliency(1)),
            "join: on dask, one side is reduced over samples",
        ),
    ],
)
def test_what_chunks_cannot_compute_is_refused_by_name(q, build, message):
    with pytest.raises(ValueError, match=message):
        ia.compute(build(q), scheduler="synchronous")
    if "join" not in message:
        ia.compute(build(q))  # in process, they run


def test_a_failing_chunk_names_its_samples(cnn64):
    x = np.random.default_rng(0).random((N, 3, 8, 8))
    x[9, 0, 0, 0] = np.nan
    ids = [f"s{i}" for i in range(N)]
    q = ia.model(cnn64).on(da.from_array(x, chunks=5), ids=ids)
    (r,) = ia.compute(q.saliency(0), scheduler="synchronous")
    edges = np.cumsum((0, *r.chunks[0]))
    i = np.searchsorted(edges, 9, side="right") - 1
    start, stop = edges[i], edges[i + 1]
    message = rf"samples {start}:{stop} \(ids 's{start}', .*\): inputs: 1 value\(s\) are NaN"
    with pytest.raises(ValueError, match=message):
        r.compute(scheduler="synchronous")

    # A user's edit that fails on some samples only, run in another thread.
    def fussy(batch):
        if (batch[:, 0, 0, 0] == 0).any():
            raise ValueError("fussy: a zero corner")
        return batch

    q = ia.model(cnn64).on(torch.from_numpy(np.nan_to_num(x)))
    (r,) = ia.compute(q.edit(fussy).saliency(0), scheduler="threads")
    with pytest.raises(ValueError, match=rf"samples {start}:{stop} \(ids {start}, .*\): fussy"):
        r.compute()


def test_progress_runs_now_under_dasks_bar(q, capsys, counting):
    net = counting(q.node.model.torch_module)
    cq = ia.model(net).on(q.node.inputs.value, labels=q.node.labels.value)
    (ref,) = ia.compute(cq.saliency(0))
    r, g = ia.compute(
        cq.saliency(0),
        cq.saliency(0).groupby("label").mean(),
        scheduler="threads",
        progress=True,
    )
    assert "100% Completed" in capsys.readouterr().out
    calls = net.calls
    assert isinstance(r.data, da.Array) and isinstance(g.data, da.Array)
    xr.testing.assert_identical(r.compute(), ref)
    assert net.calls == calls  # persisted: computing runs nothing again


def test_keywords_are_checked(q):
    with pytest.raises(ValueError, match="Did you mean 'threads'"):
        ia.compute(q.saliency(0), scheduler="thread")
    with pytest.raises(ValueError, match="client, scheduler: pass one of them"):
        q.saliency(0).compute(client=object(), scheduler="threads")
    with pytest.raises(TypeError, match=r"client: expected a dask\.distributed Client"):
        q.saliency(0).compute(client=object())
    with pytest.raises(ValueError, match="progress: dask's progress bar needs"):
        q.saliency(0).compute(progress=True)
    with pytest.raises(ValueError, match="session: results computed with dask are lazy"):
        q.saliency(0).compute(session=ia.Session(), scheduler="threads")
    small = ia.model(q.node.model.torch_module).on(q.node.inputs.value[:10])
    with pytest.raises(ValueError, match=r"read \[10, 16\] samples"):
        ia.compute(q.saliency(0), small.saliency(0), scheduler="threads")


def test_unoptimized_and_dataset_inputs(model, q):
    x, y = q.node.inputs.value, q.node.labels.value
    dq = model.on(torch.utils.data.TensorDataset(x, y), batch_size=3)
    (r,) = ia.compute(dq.saliency("label"), scheduler="threads", optimize=False)
    assert all(c % 3 == 0 for c in r.chunks[0][:-1])  # chunks hold whole batches
    xr.testing.assert_identical(r.compute(), ia.compute(q.saliency("label"))[0])
