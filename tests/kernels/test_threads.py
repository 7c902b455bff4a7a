"""Computations on one model from several threads: same results, model left as it was."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from algebra.kernels.execute import execute
from algebra.kernels.plan import Group, Job, Output, PathSpec, Points, Request, TargetSpec

THREADS = 4
ROUNDS = 6


def _bn_net() -> nn.Module:
    torch.manual_seed(5)
    net = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 4, 3, padding=1),
            bn=nn.BatchNorm2d(4),
            relu=nn.ReLU(),
            flat=nn.Flatten(),
            fc=nn.Linear(4 * 8 * 8, 3),
        )
    )
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 1.5)
    return net.train()  # BatchNorm in training mode: a forward in it changes the statistics


def _jobs(net: nn.Module, x: torch.Tensor) -> dict[str, Job]:
    pred = TargetSpec("pred")
    path = PathSpec(6, "gausslegendre", 0.0, "0.0")
    return {
        "saliency": Job(
            net,
            x,
            groups=[Group(Points("inputs"), [Request("r", pred)])],
            results=[Output("g", "r", "gradient")],
        ),
        "grad_cam": Job(
            net,
            x,
            groups=[Group(Points("inputs"), [Request("r", pred, "relu")], capture=("relu",))],
            results=[Output("cam", "r", "grad_cam", layer="relu", relu=True, upsample=True)],
        ),
        "ig": Job(
            net,
            x,
            groups=[
                Group(Points("inputs")),
                Group(Points("path", path), [Request("r", TargetSpec("index", 1))]),
            ],
            results=[Output("ig", "r", "integrated")],
        ),
        "layer_ig": Job(
            net,
            x,
            groups=[
                Group(Points("inputs"), capture=("relu",)),
                Group(Points("baseline", path), capture=("relu",)),
                Group(Points("path", path, "relu"), [Request("r", pred, "relu")]),
            ],
            results=[Output("lig", "r", "integrated", layer="relu")],
        ),
    }


def _run(job: Job) -> dict[str, torch.Tensor]:
    out = execute(job)
    return {"logits": out.logits, **{k: t.values for k, t in out.tasks.items()}}


def _state(net: nn.Module) -> dict[str, object]:
    return {
        "modes": [(n, m.training) for n, m in net.named_modules()],
        "flags": [(n, p.requires_grad) for n, p in net.named_parameters()],
        "grads": [n for n, p in net.named_parameters() if p.grad is not None],
        "hooks": [
            (n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for n, m in net.named_modules()
        ],
        "tensors": {k: v.clone() for k, v in net.state_dict().items()},
    }


def _assert_same_state(before: dict, after: dict) -> None:
    for key in ("modes", "flags", "grads", "hooks"):
        assert after[key] == before[key], key
    for name, value in before["tensors"].items():
        assert torch.equal(after["tensors"][name], value), name


@pytest.mark.parametrize("frozen", [False, True], ids=["trainable", "partly_frozen"])
def test_concurrent_computes_match_single_threaded_and_leave_the_model(frozen: bool):
    net = _bn_net()
    if frozen:  # the user's own requires_grad=False must come back as well
        net.conv.weight.requires_grad_(False)
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    jobs = _jobs(net, x)
    before = _state(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "model is in training mode"
        expected = {name: _run(job) for name, job in jobs.items()}
        _assert_same_state(before, _state(net))

        errors: list[BaseException] = []
        results: list[tuple[str, dict[str, torch.Tensor]]] = []
        start = threading.Barrier(THREADS)

        def worker(offset: int) -> None:
            try:
                start.wait()
                names = list(jobs)
                for r in range(ROUNDS):
                    name = names[(offset + r) % len(names)]
                    results.append((name, _run(jobs[name])))
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert len(results) == THREADS * ROUNDS
    for name, got in results:
        for key, value in expected[name].items():
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=name + key)
    _assert_same_state(before, _state(net))


def test_a_forward_in_another_thread_sees_no_hooks_of_a_running_compute():
    # While one thread computes a layer attribution, another thread calls the model
    # itself: its forward must run unhooked (no capture, no replacement, no error).
    net = _bn_net().eval()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    job = _jobs(net, x)["layer_ig"]
    inside = threading.Event()
    proceed = threading.Event()
    seen: list[object] = []

    class Pause(nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            if threading.current_thread() is not threading.main_thread() and not inside.is_set():
                inside.set()
                proceed.wait(timeout=30)
            return t

    net.fc = nn.Sequential(Pause(), net.fc).eval()
    with torch.no_grad():
        plain = net(x)

    def compute() -> None:
        try:
            seen.append(_run(job))
        except BaseException as e:
            seen.append(e)

    worker = threading.Thread(target=compute)
    worker.start()
    assert inside.wait(timeout=30), seen  # the worker is in a forward pass, hooks registered
    try:
        with torch.no_grad():
            here = net(x)  # the main thread: the worker's hooks must not act
    finally:
        proceed.set()
        worker.join()
    torch.testing.assert_close(here, plain)
    assert not isinstance(seen[0], BaseException), seen[0]
