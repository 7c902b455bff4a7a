"""Where the executor finds the gradient family's passes: runners by point-set kind,
assemblers by output kind, and the backward rules of an inputs pass."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from .assemble import ASSEMBLERS, path_delta
from .conductance_runs import run_conductance
from .paired_runs import run_paired
from .plan import Points
from .rules import relu_rules
from .score_cam_runs import run_masks
from .shap_runs import run_shap

# kind -> runner(module, job, group, state, ops)
RUNNERS: dict[str, Callable[..., None]] = {
    "paired": run_paired,
    "shap": run_shap,
    "masks": run_masks,
    "conductance": run_conductance,
}

__all__ = ["ASSEMBLERS", "RUNNERS", "path_delta", "rules_of"]


def rules_of(points: Points, module: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
    """The backward rules of an inputs pass (``points.rule``), for its forward only.

    Examples
    --------
    >>> with rules_of(Points("inputs", rule="guided_backprop"), torch.nn.ReLU()):
    ...     x = torch.tensor([-1.0, 2.0], requires_grad=True)
    ...     y = torch.relu(x) * torch.tensor([1.0, -1.0])
    >>> torch.autograd.grad(y.sum(), x)[0]
    tensor([0., 0.])
    """
    if not points.rule:
        return contextlib.nullcontext()
    return relu_rules(points.rule, module)  # type: ignore[arg-type]
