"""Evaluation metrics through the public API: deletion and insertion against a loop,
infidelity and sensitivity-max against Captum with the same perturbations, faithfulness
correlation against a loop; labels, filters, and one stream for several maps."""

from __future__ import annotations

import captum.attr as ca
import captum.metrics as cm
import numpy as np
import pytest
import torch
import xarray as xr

import algebra as ia
from algebra.kernels.metrics import gaussian_noise, uniform_noise


@pytest.fixture
def setting(cnn, images):
    net, x = cnn.double(), images.double()
    return net, x, ia.model(net).on(x, labels=[0, 1, 2, 3])


def _loop_curve(net, x, maps, classes, steps, mode, baseline=0.0):
    """Deletion/insertion by hand: one forward per step, features ranked per sample."""
    out = np.zeros((x.shape[0], steps + 1))
    flat = maps.reshape(x.shape[0], -1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order))
    for s in range(steps + 1):
        top = (rank < s * flat.shape[1] // steps).reshape(maps.shape)
        hide = top if mode == "deletion" else ~top
        copy = torch.where(hide, torch.full_like(x, baseline), x)
        with torch.no_grad():
            out[:, s] = net(copy).gather(1, classes[:, None])[:, 0].numpy()
    return out


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_curves_equal_a_loop(setting, mode):
    net, x, q = setting
    e = q.input_x_gradient(ia.topk(2))
    attr, curve = ia.compute(e, getattr(e, mode)(steps=6, baseline=0.25))
    assert curve.dims == ("sample", "target", "fraction") and curve.name == "input_x_gradient"
    np.testing.assert_allclose(curve.fraction.values, np.linspace(0, 1, 7))
    for t in range(2):
        maps = torch.from_numpy(attr.isel(target=t).values)
        classes = torch.from_numpy(attr["class"].isel(target=t).values)
        want = _loop_curve(net, x, maps, classes, 6, mode, 0.25)
        np.testing.assert_allclose(curve.isel(target=t).values, want, rtol=1e-10)
        area = np.trapezoid(want, dx=1 / 6, axis=1)
        np.testing.assert_allclose(curve.area.isel(target=t).values, area, rtol=1e-10)


def test_a_map_summed_over_channels_ranks_positions(setting):
    net, x, q = setting
    e = q.saliency("pred").sum("channel")
    attr, curve = ia.compute(e, e.deletion(steps=4))
    # the [N, y, x] map ranks positions: each step removes all three channels of a pixel
    maps = torch.from_numpy(attr.values)[:, None].expand(-1, 3, -1, -1).contiguous()
    classes = torch.from_numpy(attr["class"].values)
    flat = torch.from_numpy(attr.values).reshape(4, -1)
    rank = torch.sort(flat, dim=1, descending=True, stable=True).indices.argsort(1)
    hand = np.zeros((4, 5))
    for s in range(5):
        top = (rank < s * 64 // 4).reshape(4, 1, 8, 8)
        with torch.no_grad():
            copy = torch.where(top, torch.zeros_like(x), x)
            hand[:, s] = net(copy).gather(1, classes[:, None])[:, 0].numpy()
    np.testing.assert_allclose(curve.values, hand, rtol=1e-10)
    # the same as ranking every channel of the map spread over them (ties stay together)
    np.testing.assert_allclose(_loop_curve(net, x, maps, classes, 4, "deletion"), hand)


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_captum_with_the_same_noise(setting, normalize):
    net, x, q = setting
    samples, stdev, seed = 5, 0.1, 3
    e = q.input_x_gradient("all")
    attr, infid = ia.compute(e, e.infidelity(samples, stdev, seed, normalize))
    assert infid.dims == ("sample", "target") and infid.attrs["metric"] == "infidelity"
    noise = gaussian_noise(x, samples, stdev, seed)  # what the seed draws, [S, N, ...]
    interleaved = noise.transpose(0, 1).reshape(-1, *x.shape[1:])
    for c in range(5):
        theirs = cm.infidelity(
            net,
            lambda inputs: (interleaved, inputs - interleaved),
            x,
            torch.from_numpy(attr.sel(target=c).values),
            target=c,
            n_perturb_samples=samples,
            normalize=normalize,
        )
        np.testing.assert_allclose(infid.sel(target=c).values, theirs.numpy(), rtol=1e-5)


def test_sensitivity_max_equals_captum_with_the_same_noise(setting):
    net, x, q = setting
    samples, radius, seed = 4, 0.05, 2
    sens = q.saliency("label", abs=False).sensitivity_max(radius, samples, seed).compute()
    delta = uniform_noise(x, samples, radius, seed)
    interleaved = delta.transpose(0, 1).reshape(-1, *x.shape[1:])
    labels = torch.tensor([0, 1, 2, 3])
    theirs = cm.sensitivity_max(
        ca.Saliency(net).attribute,
        x,
        perturb_func=lambda inputs: inputs + interleaved,
        n_perturb_samples=samples,
        target=labels,
        abs=False,
    )
    np.testing.assert_allclose(sens.values, theirs.numpy(), rtol=1e-5)


def test_faithfulness_correlation_equals_a_loop(setting):
    net, x, q = setting
    e = q.input_x_gradient("pred")
    attr, faith = ia.compute(e, e.faithfulness_correlation(samples=12, subset=5, seed=1))
    g = torch.Generator().manual_seed(1)  # the subsets the seed draws: 5 of the 64 positions
    ranks = torch.rand(12, 64, generator=g).argsort(1).argsort(1)
    removed = (ranks < 5).reshape(12, 1, 8, 8)
    classes = torch.from_numpy(attr["class"].values)[:, None]
    maps = torch.from_numpy(attr.values)
    with torch.no_grad():
        full = net(x).gather(1, classes)[:, 0]
        drops = torch.stack(
            [
                full - net(torch.where(r, torch.zeros_like(x), x)).gather(1, classes)[:, 0]
                for r in removed
            ],
            1,
        )
    sums = torch.stack([(maps * r).sum((1, 2, 3)) for r in removed], 1)
    want = [np.corrcoef(sums[n], drops[n])[0, 1] for n in range(4)]
    np.testing.assert_allclose(faith.values, want, rtol=1e-8)


def test_metrics_of_several_maps_share_one_stream(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    maps = [q.saliency("pred"), q.input_x_gradient("pred"), q.feature_ablation("pred")]
    ia.compute(*maps, session=ia.Session())  # the metrics below compute the maps again
    own = net.calls, net.rows
    net.calls = net.rows = 0
    ia.compute(
        *[m.deletion(steps=10) for m in maps],
        *[m.infidelity(samples=4, seed=0) for m in maps],
        session=ia.Session(),
    )
    calls, rows = net.calls - own[0], net.rows - own[1]
    assert calls == 1  # one stream: every curve's copies and the noisy copies together
    # the curves share the full and the empty copy; the three infidelities one set of noise
    assert rows // 4 <= 1 + 3 * 10 - 2 + 4
    # one metric at a time costs a stream each
    net.calls = 0
    for m in maps:
        m.deletion(steps=10).compute(session=ia.Session())
    assert net.calls == (1 + 1) + (1 + 1) + (2 + 1)  # each map alone, then its own stream


def test_sensitivity_re_attributions_fuse(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    a, b = q.saliency(0), q.input_x_gradient(0)
    ia.compute(a, b, session=ia.Session())
    assert (net.calls, net.rows) == (1, 4)  # the maps' own pass, computed again below
    sens = a.sensitivity_max(samples=3, seed=0), b.sensitivity_max(samples=3, seed=0)
    ia.compute(*sens, session=ia.Session())
    # one forward (and batched backward) over the 3 x 4 noisy inputs serves both maps
    assert (net.calls, net.rows) == (1 + 1 + 1, 4 + 4 + 12)


def test_metrics_are_labelled_with_the_method_and_concatenate(setting):
    *_, q = setting
    methods = ["saliency", "input_x_gradient", "feature_ablation"]
    scores = ia.compute(*[getattr(q, m)("pred").deletion(steps=4) for m in methods])
    assert [s.name for s in scores] == methods
    assert [str(s.method.values) for s in scores] == methods
    table = xr.concat([s.area for s in scores], "method", coords="minimal", compat="override")
    assert table.dims == ("method", "sample") and list(table.method.values) == methods


def test_a_filter_applies_after_the_metric(setting):
    *_, q = setting
    e = q.where(ia.col.label >= 2).saliency("label").deletion(steps=3)
    assert e.node.op == "where" and e.node.child.op == "metric"
    r = e.compute()
    whole = q.saliency("label").deletion(steps=3).compute()
    xr.testing.assert_allclose(r, whole.isel(sample=[2, 3]).assign_attrs(r.attrs))


def test_seeded_metrics_agree_chunked_or_not(setting):
    *_, q = setting
    e = q.shapley("pred", samples=2, seed=0)
    exprs = [
        e.infidelity(seed=1),
        e.faithfulness_correlation(seed=2),
        e.sensitivity_max(samples=2, seed=3),
    ]
    whole = ia.compute(*exprs, session=ia.Session())
    with ia.set_options(memory_budget=200_000):
        parts = ia.compute(*exprs, session=ia.Session())
    for a, b in zip(whole, parts, strict=True):
        xr.testing.assert_allclose(a, b, rtol=1e-10)
