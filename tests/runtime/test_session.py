"""Sessions: a memo of results, reused only while the expression and the model are unchanged."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia


def _same(a, b) -> bool:
    return a.dims == b.dims and np.allclose(a.values, b.values, rtol=1e-5, atol=1e-7)


def fresh(expr):
    """The expression computed in a new, empty session."""
    (result,) = ia.compute(expr, session=ia.Session())
    return result


def test_re_asking_runs_nothing(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    s = ia.Session()
    (first,) = s.compute(q.saliency("all"))
    assert (net.calls, s.hits, s.misses, len(s)) == (1, 0, 1, 1)
    # Built again from scratch: structurally the same expression.
    (again,) = s.compute(ia.model(net).on(images).saliency("all"))
    assert net.calls == 1
    assert again is first
    assert (s.hits, s.misses) == (1, 1)


def test_refining_runs_only_the_new_passes(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images, labels=[0, 1, 2, 3])
    s = ia.Session()
    old = {"sal": q.saliency("all"), "ig": q.integrated_gradients("label", steps=4)}
    s.compute(old)
    net.calls = net.rows = 0
    new = q.layer("net.conv2").integrated_gradients(1, steps=3)
    out = s.compute({**old, "lig": new})
    # Only what the new expression needs: the inputs (its layer activations) and its path
    # (a scalar baseline is one shared row); none of the old passes run again.
    assert (net.calls, net.rows) == (3, 4 + 1 + 3 * 4)
    assert (s.hits, s.misses) == (2, 3)
    assert _same(out["lig"], fresh(new))
    net.calls = 0
    s.compute(old["sal"], new, old["ig"])
    assert net.calls == 0


def _lru_setup(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    exprs = [q.saliency(c) for c in range(3)]
    size = fresh(exprs[0]).nbytes
    net.calls = 0
    return net, exprs, size


def test_least_recently_used_results_are_evicted(cnn, images, counting):
    net, (a, b, c), size = _lru_setup(cnn, images, counting)
    s = ia.Session(max_bytes=2 * size)
    s.compute(a)
    s.compute(b)
    s.compute(a)  # a is now the most recently used
    s.compute(c)  # evicts b
    assert len(s) == 2 and s.nbytes == 2 * size
    net.calls = 0
    s.compute(a)
    s.compute(c)
    assert net.calls == 0
    s.compute(b)  # recomputed; evicts a (least recently used after a, c)
    assert net.calls == 1
    s.compute(c)
    assert net.calls == 1
    s.compute(a)
    assert net.calls == 2


def test_results_larger_than_the_memo_are_not_kept(cnn, images, counting):
    net, (a, _, _), size = _lru_setup(cnn, images, counting)
    s = ia.Session(max_bytes=size - 1)
    s.compute(a)
    s.compute(a)
    assert net.calls == 2 and len(s) == 0 and s.nbytes == 0
    nothing = ia.Session(max_bytes=0)
    nothing.compute(a)
    assert len(nothing) == 0


def test_nbytes_counts_every_result(cnn, images):
    q = ia.model(cnn).on(images)
    s = ia.Session()
    out = s.compute(q.saliency("all"), q.input_x_gradient(0), q.layer("relu1").saliency(1))
    assert len(s) == 3
    assert s.nbytes == sum(r.nbytes for r in out) > 0
    assert "3 results" in repr(s)


def test_clear_forgets_everything(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    s = ia.Session()
    s.compute(q.saliency(0), q.saliency(1))
    s.clear()
    assert (len(s), s.nbytes) == (0, 0)
    net.calls = 0
    s.compute(q.saliency(0))
    assert net.calls == 1


# Invalidation ------------------------------------------------------------------------


def _sgd_step(net: nn.Module) -> None:
    params = list(net.parameters())
    for p in params:
        p.grad = torch.ones_like(p)
    torch.optim.SGD(params, lr=0.05).step()
    for p in params:
        p.grad = None


def _load_other_weights(net: nn.Module) -> None:
    torch.manual_seed(7)
    other = {k: torch.randn_like(v) * 0.3 for k, v in net.state_dict().items()}
    net.load_state_dict(other)


def _no_grad_add(net: nn.Module) -> None:
    with torch.no_grad():
        net.net.conv1.weight.add_(0.1)


def _data_write(net: nn.Module) -> None:
    net.net.conv2.weight.data.mul_(1.5)


def _data_bias_fill(net: nn.Module) -> None:
    net.net.fc.bias.data.fill_(0.25)  # the gradients do not depend on it; the logits do


def _replace_parameter(net: nn.Module) -> None:
    net.net.conv1.weight = nn.Parameter(net.net.conv1.weight.detach() * -1)


MUTATIONS = {
    "no_grad_add": _no_grad_add,
    "data_write": _data_write,
    "data_bias": _data_bias_fill,
    "load_state_dict": _load_other_weights,
    "optimizer_step": _sgd_step,
    "new_parameter": _replace_parameter,
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_changed_parameters_invalidate(cnn, images, counting, mutation):
    net = counting(cnn)
    q = ia.model(net).on(images)
    exprs = {"ixg": q.input_x_gradient(ia.topk(2)), "cam": q.layer("net.relu2").grad_cam("pred")}
    s = ia.Session()
    before = s.compute(exprs)
    MUTATIONS[mutation](net)
    net.calls = 0
    after = s.compute(exprs)
    assert net.calls == 1
    expected = ia.compute(exprs, session=ia.Session())
    for key in exprs:
        assert _same(after[key], expected[key])
        assert after[key] is not before[key]
    # The memo then serves the new state.
    net.calls = 0
    s.compute(exprs)
    assert net.calls == 0


def test_sum_preserving_data_write_invalidates(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    s = ia.Session()
    (before,) = s.compute(q.saliency(0, abs=False))
    w = net.net.conv1.weight
    w.data[[0, 1]] = w.data[[1, 0]].clone()
    expected = fresh(q.saliency(0, abs=False))
    assert not _same(before, expected)  # the swap does change the attribution
    (after,) = s.compute(q.saliency(0, abs=False))
    assert _same(after, expected)


def make_bn_net() -> nn.Module:
    torch.manual_seed(4)
    net = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 4, 3, padding=1),
            bn=nn.BatchNorm2d(4),
            relu=nn.ReLU(),
            flat=nn.Flatten(),
            fc=nn.Linear(4 * 8 * 8, 3),
        )
    ).eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 1.5)
    return net


def _bn_add(net: nn.Module) -> None:
    with torch.no_grad():
        net.bn.running_mean.add_(0.4)


def _bn_data(net: nn.Module) -> None:
    net.bn.running_mean.data.add_(0.4)


def _bn_reassign(net: nn.Module) -> None:
    net.bn.running_mean = net.bn.running_mean + 0.4


def _bn_training_forward(net: nn.Module) -> None:
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(9)) + 1)
    net.eval()


BUFFER_MUTATIONS = {
    "add": _bn_add,
    "data": _bn_data,
    "reassign": _bn_reassign,
    "training_forward": _bn_training_forward,
}


@pytest.mark.parametrize("mutation", BUFFER_MUTATIONS)
def test_changed_buffers_invalidate(images, counting, mutation):
    net = make_bn_net()
    counted = counting(net)
    q = ia.model(counted).on(images)
    expr = q.input_x_gradient(1)
    s = ia.Session()
    (before,) = s.compute(expr)
    BUFFER_MUTATIONS[mutation](net)
    counted.calls = 0
    (after,) = s.compute(expr)
    assert counted.calls == 1
    expected = fresh(expr)
    assert _same(after, expected)
    assert not _same(before, expected)  # the buffer matters to the result


def test_unchanged_model_state_is_not_a_change(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    s = ia.Session()
    s.compute(q.saliency(0))
    # Toggling modes and requires_grad, and reading the weights, change no value.
    net.train().eval()
    for p in net.parameters():
        p.requires_grad_(False).requires_grad_(True)
    _ = net.state_dict()
    net.calls = 0
    s.compute(q.saliency(0))
    assert net.calls == 0


def test_new_query_on_changed_inputs_is_recomputed(mlp, features, counting):
    net = counting(mlp)
    m = ia.model(net)
    s = ia.Session()
    (before,) = s.compute(m.on(features).input_x_gradient(0))
    features.mul_(2.0)
    net.calls = 0
    (after,) = s.compute(m.on(features).input_x_gradient(0))
    assert net.calls == 1
    expected = fresh(m.on(features).input_x_gradient(0))
    assert _same(after, expected) and not _same(after, before)


def test_one_memo_per_model(cnn, cnn_factory, images, counting):
    # Two models with equal weights are still two models: each has its own entries.
    first, second = counting(cnn), counting(cnn_factory())
    s = ia.Session()
    s.compute(ia.model(first).on(images).saliency(0))
    s.compute(ia.model(second).on(images).saliency(0))
    assert (first.calls, second.calls, len(s)) == (1, 1, 2)


# Scoping -----------------------------------------------------------------------------


def test_with_session_scopes_ia_compute(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    outer_default = ia.session()
    with ia.Session() as s:
        assert ia.session() is s
        ia.compute(q.saliency(2))
        ia.compute(q.saliency(2))
        assert (net.calls, s.hits, s.misses, len(s)) == (1, 1, 1, 1)
        with ia.Session() as inner:
            assert ia.session() is inner
            ia.compute(q.saliency(2))
            assert (net.calls, len(inner)) == (2, 1)
        assert ia.session() is s
    assert ia.session() is outer_default
    # Outside the block the session is not used.
    ia.compute(q.saliency(2), session=ia.Session())
    assert s.misses == 1 and net.calls == 3


def test_with_session_restores_after_an_exception(mlp, features):
    before = ia.session()
    with pytest.raises(RuntimeError, match="inside"), ia.Session():
        raise RuntimeError("inside")
    assert ia.session() is before


def test_session_argument_overrides_the_active_one(cnn, images):
    q = ia.model(cnn).on(images)
    explicit = ia.Session()
    with ia.Session() as active:
        ia.compute(q.saliency(0), session=explicit)
        explicit.compute(q.saliency(1))
    assert (len(explicit), len(active)) == (2, 0)


@pytest.mark.parametrize("bad", ["memo", 0, {}, object()])
def test_session_argument_type_error(mlp, features, bad):
    with pytest.raises(TypeError, match=r"session: expected an ia\.Session"):
        ia.compute(ia.model(mlp).on(features).saliency(0), session=bad)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1MB"])
def test_max_bytes_validation(bad):
    with pytest.raises(ValueError, match="max_bytes"):
        ia.Session(max_bytes=bad)


def test_default_max_bytes_follows_the_option():
    with ia.set_options(session_bytes=12345):
        assert ia.Session().max_bytes == 12345
    assert ia.Session().max_bytes == ia.options.session_bytes == 512 * 2**20
