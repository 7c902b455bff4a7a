"""The optimizer's invariants: fused, shared and chunked plans give the unoptimized results,
with the pass counts that ``explain()`` announces."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import algebra as ia

FLAGS = ("simplify", "share_forward", "fuse_targets", "share_paths", "chunk")
LABELS = [0, 1, 2, 3]
PER_SAMPLE = [4, 0, 2, 1]


def _totals(plan: str) -> tuple[int, int, int]:
    last = plan.splitlines()[-1]
    found = re.match(r"total: (\d+) forwards? \((\d+) rows\), (\d+) backwards?(?: \(|$)", last)
    assert found, f"no exact totals in {last!r}"
    forwards, rows, backwards = found.groups()
    return int(forwards), int(rows), int(backwards)


def _values(result) -> torch.Tensor:
    return torch.from_numpy(np.asarray(result.values))


def assert_same(ours, reference, what: str = "") -> None:
    """Equal within rtol 1e-5 and an atol of 1e-6 times the reference's largest magnitude."""
    ours = ours if isinstance(ours, torch.Tensor) else _values(ours)
    reference = reference if isinstance(reference, torch.Tensor) else _values(reference)
    scale = float(reference.abs().max())
    assert scale > 0, f"{what}: degenerate reference (all zeros)"
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6 * scale, msg=what)


def assert_same_results(ours, reference, what: str = "") -> None:
    """Equal values, dims and coordinates (computed ones, a delta, to float rounding)."""
    assert ours.dims == reference.dims, what
    for name, coord in reference.coords.items():
        if name == "delta":  # a residual of sums: its rounding scales with what is summed
            summed = [d for d in reference.dims if d not in coord.dims]
            scale = float(abs(reference).sum(summed).max())
            got, expected = _values(ours[name]), _values(coord)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * scale, msg=what)
        else:
            assert ours[name].values.tolist() == coord.values.tolist(), f"{what}: coord {name}"
    assert_same(ours, reference, what)


def mixed(q, prefix: str = "") -> dict:
    """Every kind of target and method on one query (layers named with ``prefix``)."""
    return {
        "saliency_all": q.saliency("all"),
        "ixg_all": q.input_x_gradient("all"),
        "ig_top2": q.integrated_gradients(ia.topk(2), steps=4),
        "layer_ig_pred": q.layer(f"{prefix}conv2").integrated_gradients("pred", steps=4),
        "grad_cam_all": q.layer(f"{prefix}relu2").grad_cam("all"),
        "saliency_callable": q.saliency(lambda out: out.softmax(1)[:, 0], abs=False),
        "saliency_label": q.saliency("label", abs=False),
        "ixg_per_sample": q.input_x_gradient(PER_SAMPLE),
        "layer_saliency_top2": q.layer(f"{prefix}relu1").saliency(ia.topk(2), abs=False),
        "ig_label": q.integrated_gradients("label", steps=4),
    }


@pytest.fixture
def grads(monkeypatch):
    """Counts calls of ``torch.autograd.grad`` (one per backward pass)."""
    calls = {"n": 0}
    original = torch.autograd.grad

    def counted(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counted)
    return calls


def _run(net, exprs, grads, optimize: bool = True) -> tuple[dict, tuple[int, int, int]]:
    """Compute in a fresh session (no memo hits) and count forwards, rows and backwards."""
    net.calls = net.rows = 0
    grads["n"] = 0
    args = exprs if isinstance(exprs, list) else [exprs]
    out = ia.compute(*args, optimize=optimize, session=ia.Session())
    out = out if isinstance(exprs, dict) else list(out)
    return out, (net.calls, net.rows, grads["n"])


# 1. Fused equals unfused ------------------------------------------------------------


_unoptimized: dict = {}


def _unoptimized_mixed(net, q, grads) -> tuple[dict, tuple[int, int, int]]:
    """The unoptimized results of :func:`mixed` on the seeded CNN (computed once per run)."""
    if not _unoptimized:
        _unoptimized["run"] = _run(net, mixed(q, "net."), grads, optimize=False)
    return _unoptimized["run"]


@pytest.mark.parametrize("off", [None, *FLAGS])
def test_optimized_equals_unoptimized(cnn, images, counting, grads, off):
    net = counting(cnn)
    q = ia.model(net).on(images, labels=LABELS)
    reference, (ref_forwards, _, ref_backwards) = _unoptimized_mixed(net, q, grads)
    changes = {} if off is None else {off: False}
    with ia.set_options(**changes):
        ours, (forwards, _, backwards) = _run(net, mixed(q, "net."), grads)
    assert forwards > 0 and backwards > 0  # really computed, not taken from a memo
    for key in reference:
        assert_same_results(ours[key], reference[key], key)
    if off is None:  # the optimizer really changed the plan
        assert forwards < ref_forwards and backwards < ref_backwards


def test_unoptimized_explain_matches_compute_after_measuring(cnn, images, counting, grads):
    net = counting(cnn)
    q = ia.model(net).on(images, labels=LABELS)
    ia.compute(q.saliency(0), session=ia.Session())  # measures the model
    plan = ia.explain(mixed(q, "net."), optimized=False)
    _, counted = _unoptimized_mixed(net, q, grads)
    assert "(unoptimized)" in plan.splitlines()[0]
    assert "simplified: off" in plan and "fused: off" in plan and "chunked: off" in plan
    assert counted == _totals(plan)


@pytest.mark.parametrize(
    "changes", [None, {"chunk": False, "fuse_targets": False}], ids=["unoptimized", "flags"]
)
def test_explain_before_measuring_does_not_guess_the_classes(cnn, images, grads, changes):
    # Regression: with chunking off, explain() took a guessed 10 classes as exact.
    q = ia.model(cnn).on(images)  # no classes=: the number of outputs is unknown until run
    optimize = changes is not None
    with ia.set_options(**(changes or {})):
        plan = q.saliency("all").explain(optimized=optimize)
        grads["n"] = 0
        ia.compute(q.saliency("all"), optimize=optimize, session=ia.Session())
    assert grads["n"] == 5
    last = plan.splitlines()[-1]
    # Either the count is exact, or it is shown in terms of C, the number of classes.
    assert last.endswith(", C backwards") or _totals(plan)[2] == 5


@pytest.mark.parametrize("flag", FLAGS)
def test_explain_marks_a_switched_off_stage(mlp, features, flag):
    q = ia.model(mlp).on(features)
    exprs = (q.saliency("all"), q.integrated_gradients(0, steps=3))
    with ia.set_options(**{flag: False}):
        plan = ia.explain(*exprs)
    default = ia.explain(*exprs)
    assert plan != default
    if flag == "simplify":
        assert "simplified: off" in plan and "simplified: off" not in default
    if flag == "chunk":
        assert "chunked: off" in plan and "chunked: off" not in default


# 2. Chunked equals unchunked --------------------------------------------------------


def chunk_workload(q, x: torch.Tensor, prefix: str = "") -> dict:
    gen = torch.Generator().manual_seed(5)
    per_sample = torch.rand(x.shape, generator=gen)
    batch_one = torch.rand((1, *x.shape[1:]), generator=gen)
    return {
        **mixed(q, prefix),
        "ig_per_sample_baseline": q.integrated_gradients(
            ia.topk(2), steps=3, method="riemann_trapezoid", baseline=per_sample
        ),
        "ig_batch1_baseline": q.integrated_gradients("pred", steps=5, baseline=batch_one),
        "layer_ig_per_sample_baseline": q.layer(f"{prefix}relu1").integrated_gradients(
            "all", steps=3, baseline=per_sample
        ),
        "layer_ig_batch1_baseline": q.layer(f"{prefix}conv2").integrated_gradients(
            PER_SAMPLE, steps=3, method="riemann_left", baseline=batch_one
        ),
    }


@pytest.mark.parametrize("budget", [20_000, 400_000])
def test_chunked_equals_unchunked(cnn, images, counting, grads, budget):
    net = counting(cnn)
    q = ia.model(net).on(images, labels=LABELS)
    with ia.set_options(chunk=False):
        reference, (ref_forwards, ref_rows, _) = _run(net, chunk_workload(q, images, "net."), grads)
    with ia.set_options(memory_budget=budget):
        plan = ia.explain(chunk_workload(q, images, "net."))  # measured by the run above
        ours, (forwards, rows, _) = _run(net, chunk_workload(q, images, "net."), grads)
    chunk_lines = plan.split("chunked:")[1]
    assert "memory budget" in chunk_lines and " chunks of up to " in chunk_lines
    assert forwards > ref_forwards  # chunking really happened
    assert rows == ref_rows  # ... over the same points
    assert (forwards, rows) == _totals(plan)[:2]
    for key in reference:
        assert_same_results(ours[key], reference[key], key)


def test_chunked_before_measuring_is_estimated_then_exact(cnn, images, counting, grads):
    net = counting(cnn)
    q = ia.model(net).on(images, labels=LABELS)
    exprs = chunk_workload(q, images, "net.")
    with ia.set_options(memory_budget=20_000):
        guess = ia.explain(exprs)
        ours, (forwards, rows, _) = _run(net, exprs, grads)
        exact = ia.explain(exprs)
    assert guess.endswith("(chunks estimated before measuring activations)")
    assert not exact.endswith(")")
    assert (forwards, rows) == _totals(exact)[:2]
    with ia.set_options(chunk=False):
        reference, _ = _run(net, exprs, grads)
    for key in reference:
        assert_same_results(ours[key], reference[key], key)


def test_chunked_backward_count_matches_explain(cnn, images, counting, grads):
    # Regression: explain() counted one backward per chunk even when the chunk's targets
    # were split over several backwards.
    net = counting(cnn)
    q = ia.model(net).on(images)
    ia.compute(q.saliency(0), session=ia.Session())  # measures the model
    expr = q.integrated_gradients(ia.topk(3), steps=2)
    # Small enough to split the targets (the budget also holds the gradient accumulators).
    with ia.set_options(memory_budget=30_000):
        plan = expr.explain()
        _, counted = _run(net, [expr], grads)
    assert "targets per backward" in plan
    assert counted == _totals(plan)


# 3. Every target of a fused backward equals a per-target computation ----------------


@pytest.fixture
def varied() -> torch.Tensor:
    """Inputs whose top classes differ between samples (so packing has work to do)."""
    return torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(11)) * 4


@pytest.mark.parametrize("which", ["all", "topk3"])
def test_every_fused_target_equals_its_own_computation(cnn, varied, which):
    target = "all" if which == "all" else ia.topk(3)
    q = ia.model(cnn).on(varied)
    builders = {
        "saliency": lambda t: q.saliency(t, abs=False),
        "ixg": lambda t: q.input_x_gradient(t),
        "ig": lambda t: q.integrated_gradients(t, steps=3),
        "layer_saliency": lambda t: q.layer("relu1").saliency(t, abs=False),
        "grad_cam": lambda t: q.layer("conv2").grad_cam(t, relu=False, upsample=False),
        "layer_ig": lambda t: q.layer("conv2").integrated_gradients(t, steps=3),
    }
    # Extra requests in the same point sets, so one backward packs several target sets.
    extra = {
        "per_sample": q.saliency([0, 4, 4, 1, 2, 3], abs=False),
        "classes": q.input_x_gradient(ia.classes([4, 0])),
    }
    fused = ia.compute(
        {**{k: b(target) for k, b in builders.items()}, **extra}, session=ia.Session()
    )
    with torch.no_grad():
        top = cnn(varied).topk(3, dim=1).indices
    assert len({tuple(r) for r in top.tolist()}) > 1, "samples should rank classes differently"
    for name, build in builders.items():
        result = fused[name]
        ranks = result.sizes["target"]
        assert ranks == (5 if target == "all" else 3)
        for t in range(ranks):
            if target == "all":
                single = t
            else:
                single = result["class"].isel(target=t).values.tolist()
                assert single == top[:, t].tolist()
            (alone,) = ia.compute(build(single), session=ia.Session())
            assert_same(_values(result.isel(target=t)), _values(alone), f"{name}[{t}]")
    (alone,) = ia.compute(q.saliency([0, 4, 4, 1, 2, 3], abs=False), session=ia.Session())
    assert_same(fused["per_sample"], alone, "per_sample")
    for c in (4, 0):
        (alone,) = ia.compute(q.input_x_gradient(c), session=ia.Session())
        assert_same(_values(fused["classes"].sel(target=c)), _values(alone), f"classes[{c}]")


# 4. Minimum pass counts -------------------------------------------------------------


def shared_workload(q) -> list:
    return [
        q.saliency("all"),
        q.input_x_gradient("all"),
        q.layer("net.relu2").grad_cam("all"),
        q.integrated_gradients(ia.topk(2), steps=4),
        q.integrated_gradients("pred", steps=4),
    ]


@pytest.mark.parametrize(
    ("changes", "forwards", "backwards"),
    [
        ({}, 2, 2),  # the inputs, and one path shared by both integrated gradients
        ({"share_paths": False}, 3, 3),
        ({"share_forward": False}, None, None),  # more forwards than 2
        # one backward per target: 5 (saliency and input-x-gradient share a gradient),
        # 5 for GradCAM, and 2 + 1 on the shared path
        ({"fuse_targets": False}, 2, 13),
        ({"simplify": False}, 2, 2),  # merged requests still share the passes
        # after each shared forward, one backward per target: all 5 classes, then the
        # path's top-2 and pred (a target spec's rows in turn: explain counts them exactly)
        ({"backward": "sequential"}, 2, 5 + 2 + 1),
    ],
    ids=["default", "share_paths", "share_forward", "fuse_targets", "simplify", "sequential"],
)
def test_minimum_pass_counts(cnn, images, counting, grads, changes, forwards, backwards):
    net = counting(cnn)
    q = ia.model(net, classes=list("abcde")).on(images)
    with ia.set_options(**{"backward": "batched", **changes}):
        plan = ia.explain(*shared_workload(q))
        _, counted = _run(net, shared_workload(q), grads)
    assert counted == _totals(plan)
    if forwards is None:
        assert counted[0] > 2 and counted[1] > 4 + 16
    else:
        # each path: 4 steps x 4 samples, and its shared start (1 row) for the delta
        assert counted == (forwards, 4 + (forwards - 1) * (16 + 1), backwards)


def test_grad_cam_shares_the_layer_gradient(cnn, images, counting, grads):
    net = counting(cnn)
    q = ia.model(net).on(images)
    layer = q.layer("net.relu2")
    exprs = [layer.grad_cam(2), layer.saliency(2), layer.input_x_gradient(2), q.saliency(2)]
    plan = ia.explain(*exprs)
    _, counted = _run(net, exprs, grads)
    assert counted == _totals(plan) == (1, 4, 1)


def test_identical_integrated_gradients_across_queries_share_one_path(cnn, images, counting):
    net = counting(cnn)
    m = ia.model(net)
    first = m.on(images).integrated_gradients(0, steps=4)
    second = m.on(images).integrated_gradients(ia.topk(2), steps=4)
    other_rule = m.on(images).integrated_gradients(0, steps=4, method="riemann_left")
    ia.compute(first, second, other_rule, session=ia.Session())
    assert net.calls == 3  # inputs, the shared gausslegendre path, the riemann_left path


def test_sharing_switched_off_still_gives_distinct_results(cnn, images):
    q = ia.model(cnn).on(images)
    # Same points but different baselines: they must never share a path.
    a = q.integrated_gradients(0, steps=4, baseline=0.0)
    b = q.integrated_gradients(0, steps=4, baseline=0.5)
    ra, rb = ia.compute(a, b, session=ia.Session())
    (alone_b,) = ia.compute(b, session=ia.Session(), optimize=False)
    assert_same(rb, alone_b)
    assert not np.allclose(ra.values, rb.values)
