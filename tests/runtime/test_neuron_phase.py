"""The phase of counterfactual neurons: one batched optimisation of all mistakes, keyed on the
model's state in the memo, on the model's device."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import algebra as ia
from algebra.runtime import neurons as phase
from algebra.runtime.graph import read_graph

pytestmark = pytest.mark.usefixtures("one_thread")


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def data(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_all_mistakes_are_optimised_in_one_batch(monkeypatch):
    net = mlp()
    x, y = data()
    calls = []
    original = phase.counterfactual_deltas

    def recording(features, *args, **kwargs):
        calls.append(tuple(features.shape))
        return original(features, *args, **kwargs)

    monkeypatch.setattr(phase, "counterfactual_deltas", recording)
    q = ia.model(net).on(x, labels=y)
    ds0, ds1 = ia.compute(q.counterfactual_neurons(0), q.counterfactual_neurons(1))
    assert calls == [(ds0.sizes["sample"], 8), (ds1.sizes["sample"], 8)]  # one call per class
    assert min(ds0.sizes["sample"], ds1.sizes["sample"]) > 1


def test_the_graph_knows_the_model_so_the_memo_key_has_its_state():
    net = mlp()
    x, y = data()
    node = ia.model(net).on(x, labels=y).counterfactual_neurons(0).node
    graph = read_graph([node])
    assert graph.modules[node.token] == {id(net)}
    assert graph.module_of[id(net)] is net
    assert graph.leaves[node.token] == ()  # nothing for the attribution optimizer
    assert [argument for argument, _ in graph.tensors] == ["inputs", "labels"]


def test_inputs_changed_in_place_are_refused():
    net = mlp()
    x, y = data()
    expr = ia.model(net).on(x, labels=y).counterfactual_neurons(0)
    x.mul_(2.0)
    with pytest.raises(ValueError, match="inputs"):
        expr.compute()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_cuda_model_the_result_matches_the_cpu_one():
    net = mlp()
    x, y = data()
    cpu = ia.model(net).on(x, labels=y).counterfactual_neurons(0).compute()
    gpu_net = mlp().cuda()
    gpu = ia.model(gpu_net).on(x.cuda(), labels=y.cuda()).counterfactual_neurons(0).compute()
    assert gpu.position.values.tolist() == cpu.position.values.tolist()
    assert (gpu.flipped.values == cpu.flipped.values).all()
    torch.testing.assert_close(
        torch.from_numpy(gpu.delta.values), torch.from_numpy(cpu.delta.values), atol=1e-4, rtol=0
    )
