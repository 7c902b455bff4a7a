"""The perturbation stream: deduplication, chunking, seeds, model hygiene, copies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from algebra.kernels.coalitions import (
    ablation_design,
    exact_design,
    kernel_shap_design,
    lime_design,
    permutation_design,
    shapley_design,
)
from algebra.kernels.estimators import attribute, scores
from algebra.kernels.occlusion import occlusion_design
from algebra.kernels.perturb import count_batches, deduplicate, evaluate
from algebra.kernels.players import every_feature, grid, player_mask


def _feature_masks(design, shape):
    """Each coalition's kept features per sample, as hashable tuples (a plain loop)."""
    ids = design.players.ids.expand(shape[0], *shape[1:])
    rows = []
    for k in range(design.keep.shape[0]):
        keep = torch.cat([torch.ones(1, dtype=torch.bool), design.keep[k]])[ids + 1]
        fill = () if design.sources is None or keep.all() else tuple(design.sources[k].tolist())
        rows.append((tuple(keep.flatten().tolist()), fill))
    return rows


def test_dedup_evaluates_shared_copies_once(cnn, images, counting):
    net = counting(cnn)
    shape = tuple(images.shape)
    players = grid(shape, 2, 2)
    designs = [
        shapley_design(players, samples=3, seed=0),
        exact_design(players),
        ablation_design(players),
        kernel_shap_design(players, samples=10, seed=1),
        occlusion_design(shape, (3, 8, 8), 1),  # whole-input window: the baseline copy
        occlusion_design(shape, (3, 4, 4), 4),  # the grid's cells: ablation's copies
    ]
    out = evaluate(net, images, designs)
    distinct = {row for d in designs for row in _feature_masks(d, shape)}
    assert out.copies == sum(d.keep.shape[0] for d in designs)
    assert out.unique == len(distinct) == 16  # all 2**4 coalitions, nothing else
    assert net.rows == out.rows == 16 * 4 and net.calls == out.batches == 1
    # each design's copies still map to the right logits
    for d, idx in zip(designs, out.index, strict=True):
        alone = evaluate(cnn, images, [d])
        torch.testing.assert_close(out.logits[:, idx], alone.logits[:, alone.index[0]])


def test_dedup_keeps_permutation_fills_apart(mlp, features):
    players = every_feature(tuple(features.shape))
    perm = permutation_design(players, 5, seed=0)
    other = permutation_design(players, 5, seed=1)
    abl = ablation_design(players)
    unique = deduplicate([perm, other, abl], tuple(features.shape))
    # the input itself is shared; every shuffled or ablated copy is its own
    assert unique.count == 1 + 3 * players.count
    assert len({int(i[0]) for i in unique.index}) == 1


def test_targets_cost_no_forward(cnn, images, counting):
    net = counting(cnn)
    design = shapley_design(grid(tuple(images.shape), 2, 2), samples=2, seed=0)
    out = evaluate(net, images, [design])
    one = scores(out.logits, out.index[0], torch.zeros(1, 4, dtype=torch.long))
    every = scores(out.logits, out.index[0], torch.arange(5)[:, None].expand(5, 4))
    assert net.calls == 1 and one.shape[0] == 1 and every.shape[0] == 5
    torch.testing.assert_close(every[:1], one)


@pytest.mark.parametrize("budget", [1, 40_000, 300_000])
def test_chunked_equals_unchunked(cnn, images, counting, budget):
    net = counting(cnn.double())
    x = images.double()
    designs = [
        shapley_design(grid(tuple(x.shape), 2, 2), samples=2, seed=0),
        occlusion_design(tuple(x.shape), (3, 4, 4), 2),
    ]
    whole = evaluate(net, x, designs, 0.1)
    calls = net.calls
    parts = evaluate(net, x, designs, 0.1, budget=budget)
    assert parts.batches == net.calls - calls > 1
    assert parts.batches == count_batches(net, x, whole.unique, budget)  # profile now known
    assert net.rows == 2 * whole.rows  # chunks never evaluate a copy twice
    torch.testing.assert_close(parts.logits, whole.logits, rtol=1e-12, atol=1e-12)


def test_seed_reproducible(cnn, images):
    players = grid(tuple(images.shape), 4, 4)
    targets = torch.tensor([[0, 1, 2, 3]])
    for make in (
        lambda s: shapley_design(players, samples=3, seed=s),
        lambda s: kernel_shap_design(players, samples=20, seed=s),
        lambda s: lime_design(players, samples=20, seed=s),
        lambda s: permutation_design(players, 4, seed=s),
    ):
        a, b, c = make(7), make(7), make(8)
        assert torch.equal(a.keep, b.keep)
        changed = a.keep if a.sources is None else a.sources
        assert not torch.equal(changed, c.keep if a.sources is None else c.sources)
        results = []
        for d in (a, b):
            out = evaluate(cnn, images, [d])
            results.append(attribute(d, scores(out.logits, out.index[0], targets), images))
        assert torch.equal(results[0], results[1])
    torch.manual_seed(3)
    first = shapley_design(players, samples=2).orders
    torch.manual_seed(3)
    assert torch.equal(first, shapley_design(players, samples=2).orders)


def test_per_sample_players(cnn, images):
    x = images.double()
    net = cnn.double()
    mask = torch.stack([torch.arange(4).reshape(2, 2), torch.arange(4).reshape(2, 2).T] * 2)
    mask = mask.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None]  # [N, 1, 8, 8]
    players = player_mask(mask, tuple(x.shape))
    design = ablation_design(players)
    out = evaluate(net, x, [design], 0.0)
    got = scores(out.logits, out.index[0], torch.zeros(1, 4, dtype=torch.long))
    for n in range(4):
        for p in range(4):
            copy = torch.where(mask[n] == p, torch.zeros_like(x[n]), x[n])
            with torch.no_grad():
                want = net(copy[None])[0, 0]
            torch.testing.assert_close(got[0, n, p + 1], want)


def test_model_comes_back_unchanged(cnn, images):
    net = nn.Sequential(cnn, nn.Dropout(0.5)).train()
    flags = {p: p.requires_grad for p in net.parameters()}
    design = ablation_design(grid(tuple(images.shape), 2, 2))
    with pytest.warns(UserWarning, match="training mode"):
        evaluate(net, images, [design])
    assert net.training and all(p.requires_grad == f for p, f in flags.items())
    assert all(p.grad is None for p in net.parameters())

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            raise RuntimeError("boom")

    broken = Broken().eval()
    with pytest.raises(RuntimeError, match="boom"):
        evaluate(broken, torch.ones(2, 6), [ablation_design(every_feature((2, 6)))])
    assert broken.fc.weight.requires_grad and not broken._forward_hooks
    assert not any(m._forward_hooks for m in broken.modules())


def test_bad_stream_inputs(mlp, features):
    design = ablation_design(every_feature((5, 6)))
    with pytest.raises(ValueError, match=r"^baseline:"):
        evaluate(mlp, features, [design], torch.zeros(4))
    with pytest.raises(ValueError, match=r"^groups:"):
        evaluate(mlp, features, [ablation_design(every_feature((5, 3, 2)))])
    with pytest.raises(ValueError, match=r"^designs:"):
        evaluate(mlp, features, [])
    with pytest.raises(ValueError, match=r"^model:"):
        evaluate(nn.Flatten(0).eval(), features, [design])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu(cnn_factory, images):
    players = grid(tuple(images.shape), 2, 2)
    designs = [
        shapley_design(players, samples=3, seed=1),
        kernel_shap_design(players, samples=12, seed=2),
        lime_design(players, samples=12, seed=3),
        permutation_design(players, 4, seed=4),
        occlusion_design(tuple(images.shape), (3, 4, 4), 2),
    ]
    targets = torch.tensor([[0, 1, 2, 3], [4, 3, 2, 1]])
    results = []
    for device in ("cpu", "cuda"):
        net = cnn_factory().double().to(device)
        out = evaluate(net, images.double(), designs, 0.2, budget=200_000)
        assert out.logits.device.type == device
        values = [
            attribute(d, scores(out.logits, i, targets), images.double(), 0.2).cpu()
            for d, i in zip(designs, out.index, strict=True)
        ]
        results.append((out, values))
    (cpu, cpu_values), (gpu, gpu_values) = results
    assert cpu.unique == gpu.unique
    for a, b in zip(cpu.index, gpu.index, strict=True):
        assert torch.equal(a, b.cpu())
    for a, b in zip(cpu_values, gpu_values, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
