"""Small memory budgets: a computation stays within the budget, or warns with the figure.

Peak memory is measured from torch's own allocation records: the profiler's memory events
(``profile_memory=True``) report every allocation and free of torch's CPU allocator with a
timestamp, so their running sum is the memory the computation's tensors take at each
moment (tracemalloc sees none of it, and RSS includes the allocator's caching).
"""

from __future__ import annotations

import json
import re
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import algebra as ia

BUDGET = 2 * 2**20


def _peak_bytes(fn, tmp_path: Path) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    trace = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    changes = sorted(
        (e["ts"], e["args"]["Bytes"])
        for e in events
        if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0
    )
    total = peak = 0
    for _, change in changes:
        total += change
        peak = max(peak, total)
    return peak


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 16, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(16, 32, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(2),
            flat=nn.Flatten(),
            fc=nn.Linear(128, 10),
        )
    ).eval()


def _exprs(q) -> dict[str, object]:
    return {
        "saliency_pred": q.saliency("pred"),
        "ig_pred": q.integrated_gradients("pred", steps=4),
        "ig_top2": q.integrated_gradients(ia.topk(2), steps=4),
        "layer_ig": q.layer("relu2").integrated_gradients("pred", steps=4),
        "grad_cam_all": q.layer("relu2").grad_cam("all"),
        "saliency_all": q.saliency("all"),
    }


@pytest.mark.parametrize("samples", [4, 48])
@pytest.mark.parametrize("name", list(_exprs(ia.model(_net()).on(torch.zeros(1, 3, 16, 16)))))
def test_within_budget_or_warned_with_a_figure_above_the_peak(name, samples, tmp_path):
    net = _net()
    x = torch.rand(samples, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    expr = _exprs(ia.model(net).on(x))[name]
    with ia.set_options(memory_budget=BUDGET):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            expected = ia.compute(expr, session=ia.Session())[0]  # the first measures the model
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = []
            peak = _peak_bytes(lambda: got.append(ia.compute(expr, session=ia.Session())), tmp_path)
    torch.testing.assert_close(torch.as_tensor(got[0][0].values), torch.as_tensor(expected.values))
    messages = [str(w.message) for w in caught if "memory budget" in str(w.message)]
    if peak > BUDGET:
        assert messages, f"{name}: peak {peak} bytes over the {BUDGET}-byte budget, no warning"
        needed = int(re.search(r"about (\d+) bytes are needed", messages[0])[1])
        # The figure is an estimate: it must not understate what was really used.
        assert needed >= 0.95 * peak, (needed, peak)
        assert len(messages) == 1
    else:
        assert not messages, messages


def test_the_plan_warns_for_results_larger_than_the_budget(tmp_path):
    # 96 samples, all 10 classes: the gradients alone take 96 x 10 x 3 KiB = 2.8 MiB.
    net = _net()
    x = torch.rand(96, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    expr = ia.model(net).on(x).saliency("all")
    with (
        ia.set_options(memory_budget=BUDGET),
        pytest.warns(UserWarning, match=r"memory budget: 2097152 bytes cannot hold"),
    ):
        ia.compute(expr, session=ia.Session())
