"""The reference model of a disagreement is run like the model: in eval mode, unchanged."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from algebra.kernels.execute import execute
from algebra.kernels.plan import Group, Job, Output, Points, Request, TargetSpec


def _bn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(lin=nn.Linear(6, 5), bn=nn.BatchNorm1d(5), fc=nn.Linear(5, 3))
    ).train()


def test_reference_model_runs_in_eval_mode_and_keeps_its_statistics():
    net, reference = _bn(0).eval(), _bn(1)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(2))
    stats = {k: v.clone() for k, v in reference.state_dict().items()}
    job = Job(
        net,
        x,
        groups=[Group(Points("inputs"), [Request("r", TargetSpec("pred"))])],
        results=[Output("g", "r", "gradient")],
        reference=reference,
    )
    with pytest.warns(UserWarning, match="training mode"):
        out = execute(job)
    for key, value in reference.state_dict().items():
        assert torch.equal(value, stats[key]), key
    assert reference.training and all(p.requires_grad for p in reference.parameters())
    with torch.no_grad():
        expected = reference.eval()(x)
    torch.testing.assert_close(out.logits, expected)
