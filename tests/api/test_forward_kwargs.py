"""Extra forward arguments (``forward_kwargs``): tensors with the samples' leading dim follow
each sample through paths, noisy and perturbed copies, references and chunks (Captum's
``additional_forward_args``, float64, 1e-5); others pass as they are. Several inputs and
forward arguments go through the same forwards and batched backwards as one tensor, and
the model comes back untouched."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from captum.attr._core.noise_tunnel import NoiseTunnel
from torch import nn

import algebra as ia


class Masked(nn.Module):
    """Scores of a masked sequence of vectors, scaled per sample and by a constant; the
    mask and the scale act before nonlinearities, so every point must see its own."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(4, 6)
        self.act = nn.ReLU()
        self.squash = nn.Tanh()
        self.head = nn.Linear(6, 3)

    def forward(self, x, mask, scale=None, temperature=1.0):
        h = self.act(self.proj(x) * mask[..., None]).sum(1)
        h = h if scale is None else h * scale[:, None]
        return self.head(self.squash(h)) / temperature


class Counted(nn.Module):
    """Counts the forwards and rows of the model it wraps (in a dict: plain attributes are
    part of a model's state token)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.counts = {"calls": 0, "rows": 0}

    def forward(self, x, mask, scale=None, temperature=1.0):
        self.counts["calls"] += 1
        self.counts["rows"] += x.shape[0]
        return self.net(x, mask, scale, temperature)


@pytest.fixture
def net() -> Masked:
    return Masked().double().eval()


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 7, 4, generator=g, dtype=torch.float64)
    mask = (torch.rand(5, 7, generator=g) > 0.3).to(torch.float64)
    scale = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    return x, mask, scale


def args(mask, scale):
    return (mask, scale, 0.5)


KWARGS = {"temperature": 0.5}


def test_paths_and_gradients_follow_each_sample(net, data, parity64, assert_untouched):
    x, mask, scale = data
    q = ia.model(net).on(x, forward_kwargs={"mask": mask, "scale": scale, **KWARGS})
    sal, ig = ia.compute(q.saliency(1, abs=False), q.integrated_gradients(1, steps=20))
    parity64(
        sal, ca.Saliency(net).attribute(x, 1, abs=False, additional_forward_args=args(mask, scale))
    )
    theirs, delta = ca.IntegratedGradients(net).attribute(
        x,
        target=1,
        n_steps=20,
        additional_forward_args=args(mask, scale),
        return_convergence_delta=True,
    )
    parity64(ig, theirs)
    torch.testing.assert_close(torch.from_numpy(ig.delta.values), delta, atol=1e-9, rtol=1e-5)
    layer = q.layer("proj").integrated_gradients(1, steps=20, baseline=0.3).compute()
    theirs = ca.LayerIntegratedGradients(net, net.proj).attribute(
        x, baselines=0.3, target=1, n_steps=20, additional_forward_args=args(mask, scale)
    )
    parity64(layer, theirs)
    assert_untouched(net)


def test_references_and_noisy_copies_follow_each_sample(monkeypatch, net, data, parity64):
    x, mask, scale = data
    q = ia.model(net).on(x, forward_kwargs={"mask": mask, "scale": scale, **KWARGS})
    theirs = ca.DeepLift(net).attribute(x, target=2, additional_forward_args=args(mask, scale))
    parity64(q.deeplift(2).compute(), theirs)
    references = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(5)).double()
    theirs = ca.DeepLiftShap(net).attribute(
        x, baselines=references, target=2, additional_forward_args=args(mask, scale)
    )
    parity64(q.deeplift_shap(2, references).compute(), theirs)
    noise = 0.3 * torch.randn(4, *x.shape, generator=torch.Generator().manual_seed(6)).double()

    def add(input, stdev, count):
        return input.repeat_interleave(count, 0) + noise.transpose(0, 1).reshape(
            -1, *input.shape[1:]
        )

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))
    smooth = q.noise(noise=noise).integrated_gradients(0, steps=8).mean("noise").compute()
    theirs = NoiseTunnel(ca.IntegratedGradients(net)).attribute(
        x, nt_samples=4, target=0, n_steps=8, additional_forward_args=args(mask, scale)
    )
    parity64(smooth, theirs)


def test_perturbed_copies_follow_each_sample(net, data, parity64):
    x, mask, scale = data
    q = ia.model(net).on(x, forward_kwargs={"mask": mask, "scale": scale, **KWARGS})
    groups = torch.arange(7)[:, None].expand(7, 4).contiguous()  # one player per position
    ablation = q.feature_ablation(0, groups=groups, baseline=0.1).compute()
    theirs = ca.FeatureAblation(net).attribute(
        x,
        baselines=0.1,
        target=0,
        feature_mask=groups[None],
        additional_forward_args=args(mask, scale),
    )
    parity64(ablation, theirs)
    result = q.shapley(0, groups=groups, samples=3, seed=0).compute()
    # Shapley values are efficient: each sample's players (a position, its value on each of
    # its 4 features) add up to f(x) - f(baseline), its own mask and scale included.
    with torch.no_grad():
        gap = net(x, mask, scale, 0.5)[:, 0] - net(torch.zeros_like(x), mask, scale, 0.5)[:, 0]
    totals = torch.from_numpy(result.isel(dim_2=0).sum("dim_1").values)
    torch.testing.assert_close(totals, gap, atol=1e-9, rtol=1e-9)


def test_chunks_cut_the_forward_arguments_with_the_samples(net, data):
    x, mask, scale = data
    q = ia.model(net).on(x, forward_kwargs={"mask": mask, "scale": scale, **KWARGS})
    exprs = [q.integrated_gradients("all", steps=16), q.saliency("pred")]
    with ia.set_options(chunk=False):
        whole = ia.compute(*exprs, session=ia.Session())
    with ia.set_options(memory_budget=6_000):
        plan = ia.explain(*exprs)
        chunked = ia.compute(*exprs, session=ia.Session())
    assert " chunks of up to " in plan.split("chunked:")[1]
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(torch.from_numpy(a.values), torch.from_numpy(b.values))


def test_one_forward_and_one_batched_backward_per_point_set(net, data, passes):
    x, mask, scale = data
    counted = Counted(net).eval()
    q = ia.model(counted).on(
        {"x": x, "mask": mask}, attribute="x", forward_kwargs={"scale": scale, **KWARGS}
    )
    exprs = [
        q.saliency("all")["x"],
        q.input_x_gradient(ia.topk(2))["x"],
        q.integrated_gradients("all", steps=8)["x"],
        q.integrated_gradients(1, steps=8)["x"],
        q.layer("net.proj").integrated_gradients("all", steps=8),
    ]
    results, counts, totals = passes(_CountedView(counted), exprs)
    # inputs (5 rows), their path (8 x 5 + 5 start rows), the layer's baseline (5 rows) and
    # its path (8 x 5): one forward each, one batched backward per point set
    assert counts == totals == (4, 95, 3)
    assert [r.dims for r in results[:3]] == [("sample", "target", "dim_1", "dim_2")] * 3


class _CountedView:
    """What the ``passes`` fixture reads and resets: ``calls`` and ``rows``."""

    def __init__(self, counted: Counted) -> None:
        self.counted = counted

    @property
    def calls(self) -> int:
        return self.counted.counts["calls"]

    @calls.setter
    def calls(self, value: int) -> None:
        self.counted.counts["calls"] = value

    @property
    def rows(self) -> int:
        return self.counted.counts["rows"]

    @rows.setter
    def rows(self, value: int) -> None:
        self.counted.counts["rows"] = value


def test_arguments_without_the_samples_dim_pass_as_they_are(net, data, parity64):
    x, mask, _ = data
    shared = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)  # not [N, ...]: as it is

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = net

        def forward(self, x, mask, weights, flag=False):
            out = self.inner(x, mask) * weights
            return -out if flag else out

    model = Shared().eval()
    q = ia.model(model).on(x, forward_kwargs={"mask": mask, "weights": shared, "flag": True})
    theirs = ca.InputXGradient(model).attribute(
        x, target=2, additional_forward_args=(mask, shared, True)
    )
    parity64(q.input_x_gradient(2).compute(), theirs)


def test_the_model_comes_back_untouched_after_an_error(net, data, assert_untouched):
    x, _mask, _scale = data
    bad = torch.ones(5, 3, dtype=torch.float64)  # the forward cannot broadcast it
    q = ia.model(net).on(x, forward_kwargs={"mask": bad})
    with pytest.raises(RuntimeError):
        q.integrated_gradients(0, steps=4).compute()
    assert_untouched(net)


def test_forward_kwargs_are_checked_when_the_query_is_built(net, data):
    x, mask, _ = data
    with pytest.raises(
        ValueError,
        match=r"forward_kwargs: 'maks' is not an argument of forward\(x, mask, .*Did you mean 'mask'\?",
    ):
        ia.model(net).on(x, forward_kwargs={"maks": mask})
    with pytest.raises(ValueError, match=r"forward_kwargs: forward.* needs 'mask'; given: 'x'"):
        ia.model(net).on(x, forward_kwargs={"scale": mask[:, 0]})
    with pytest.raises(ValueError, match="forward_kwargs: 'x' is already given as an input"):
        ia.model(net).on({"x": x, "mask": mask}, forward_kwargs={"x": x})
    with pytest.raises(TypeError, match="forward_kwargs: expected a dict"):
        ia.model(net).on(x, forward_kwargs=[mask])
