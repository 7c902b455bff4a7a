"""False-correlation mitigation: edit only the decision layer so that class c relies less on
the selected neurons (NeuroInspect stage 3), with a control run beside it.

The backbone's features are computed once, in eval mode without gradients, and cached;
only a copy of the decision layer is trained (:mod:`algebra.kernels.headfit`). The
user's module is never modified.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .accuracy import Accuracy, accuracy
from .batches import first_inputs
from .decision import Decision, check_class, check_neurons, decision_features, find_decision
from .headfit import SCHEDULES, SELECT, HeadFit, fit_head, target_ratio
from .importance import importance_from_mean


@dataclass(frozen=True)
class Report:
    """Accuracies on the evaluation data: ``before`` (the original head), ``after`` (the
    mitigated head) and ``control`` (retrained without the ratio term, or ``None``)."""

    before: Accuracy
    after: Accuracy
    control: Accuracy | None


@dataclass(frozen=True)
class Mitigation:
    """The edited ``module`` (a copy whose decision layer is ``head``; the backbone's
    parameters and buffers are shared, not copied), the fits, the ``report`` and the
    target ``ratio`` o used; ``control_*`` are ``None`` unless a control was asked for."""

    module: nn.Module
    head: nn.Linear
    fit: HeadFit
    control_module: nn.Module | None
    control_head: nn.Linear | None
    control_fit: HeadFit | None
    report: Report
    ratio: float
    neurons: torch.Tensor
    decision: Decision


def mitigate(
    module: nn.Module,
    neurons: Any,
    cls: int,
    data: Any,
    *,
    val_data: Any = None,
    groups: Any = None,
    layer: str | None = None,
    head: str | None = None,
    ratio: float | None = None,
    lam: float = 0.01,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 64,
    select: str = "worst_class",
    schedule: str = "cosine",
    patience: int | None = 5,
    control: bool = False,
    seed: int = 0,
) -> Mitigation:
    """Retrain the decision layer on ``data`` so that class ``cls`` relies less on ``neurons``.

    ``data`` and ``val_data`` are ``(inputs, labels)`` pairs or iterables of such batches.
    Checkpoints are chosen and training stops early on ``val_data`` (else on ``data``);
    the report is computed there too, per group when ``groups`` (one id per evaluation
    sample) is given. Without ``ratio``, the target is o = (min_{j in S} imp_j - 1)/3 + 1,
    imp measured at the mean feature of the evaluation data. ``control=True`` also trains
    the same head with the same batches, schedule and selection but λ = 0.

    Examples
    --------
    >>> torch.manual_seed(0) is not None
    True
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    >>> x, y = torch.randn(90, 4), torch.randint(0, 3, (90,))
    >>> res = mitigate(net, [1, 2], 0, (x, y), epochs=2, control=True)
    >>> res.module[2] is net[2], res.module[0].weight is net[0].weight
    (False, True)
    >>> sorted(vars(res.report))
    ['after', 'before', 'control']
    """
    decision = find_decision(module, first_inputs(data), layer, head)
    cls = check_class(cls, decision.classes)
    index = check_neurons(neurons, decision.neurons, f"the decision layer {decision.head!r}")
    _check_numbers(lam=lam, epochs=epochs, lr=lr, batch_size=batch_size, patience=patience)
    if select not in SELECT:
        raise ValueError(f"select: expected one of {SELECT}; got {select!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}; got {schedule!r}")
    z, y = decision_features(module, decision, data, argument="data")
    if y is None:
        raise ValueError("data: labels are needed to retrain the decision layer")
    if val_data is None:
        zv, yv = z, y
    else:
        zv, yv = decision_features(module, decision, val_data, argument="val_data")
        if yv is None:
            raise ValueError("val_data: labels are needed for checkpoint selection")
    for argument, labels in (("data", y), ("val_data", yv)):
        if int(labels.min()) < 0 or int(labels.max()) >= decision.classes:
            raise ValueError(
                f"{argument}: labels must lie in 0..{decision.classes - 1} for the "
                f"{decision.classes} classes of the decision layer"
            )
    if groups is not None:
        groups = torch.as_tensor(groups).to(yv.device)
        if groups.shape != yv.shape:
            raise ValueError(
                f"groups: expected one group id per evaluation sample ({len(yv)}); "
                f"got shape {tuple(groups.shape)}"
            )
    if ratio is None:
        imp = importance_from_mean(zv.mean(0), decision.weight, decision.bias, cls)
        ratio = target_ratio(imp, index)
    index = index.to(z.device)
    settings = dict(
        neurons=index, cls=cls, ratio=float(ratio), epochs=epochs, lr=lr, batch_size=batch_size,
        select=select, schedule=schedule, patience=patience, seed=seed,
    )  # fmt: skip
    fit = fit_head(decision.weight, decision.bias, z, y, zv, yv, lam=lam, **settings)
    fit_c = (
        fit_head(decision.weight, decision.bias, z, y, zv, yv, lam=0.0, **settings)
        if control
        else None
    )
    modules = dict(module.named_modules())
    new_head, edited = _edited(module, decision.head, modules[decision.head], fit)
    c_head, c_edited = (
        _edited(module, decision.head, modules[decision.head], fit_c) if fit_c else (None, None)
    )
    report = Report(
        accuracy(decision.weight, decision.bias, zv, yv, groups),
        accuracy(fit.weight, fit.bias, zv, yv, groups),
        accuracy(fit_c.weight, fit_c.bias, zv, yv, groups) if fit_c else None,
    )
    return Mitigation(
        edited, new_head, fit, c_edited, c_head, fit_c, report, float(ratio), index, decision
    )


def with_head(module: nn.Module, name: str, new_head: nn.Module) -> nn.Module:
    """A copy of ``module`` whose submodule ``name`` is ``new_head``, in eval mode.

    The copy has its own module objects (its modes and hooks are its own) but shares
    every other parameter and buffer tensor with ``module``: nothing of the backbone is
    duplicated, and ``module`` itself is left exactly as it was.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2))
    >>> copy_ = with_head(net, "1", nn.Linear(3, 5))
    >>> copy_(torch.ones(1, 2)).shape, net[1].out_features, copy_[0].weight is net[0].weight
    (torch.Size([1, 5]), 2, True)
    """
    modules = dict(module.named_modules())
    if name not in modules or not name:
        raise ValueError(f"name: the model has no submodule {name!r} to replace")
    old = modules[name]
    old_tensors = {id(t) for t in [*old.parameters(), *old.buffers()]}
    memo: dict[int, Any] = {
        id(t): t for t in [*module.parameters(), *module.buffers()] if id(t) not in old_tensors
    }
    memo[id(old)] = new_head
    edited = copy.deepcopy(module, memo)
    return edited.eval()


def _edited(
    module: nn.Module, name: str, old: nn.Linear, fit: HeadFit
) -> tuple[nn.Linear, nn.Module]:
    new = copy.deepcopy(old)
    with torch.no_grad():
        new.weight.copy_(fit.weight)
        if new.bias is not None:
            new.bias.copy_(fit.bias)
        else:  # the fit trained a bias the original lacked: keep it
            new.bias = nn.Parameter(fit.bias.clone())
    new.eval()
    return new, with_head(module, name, new)


def _check_numbers(**values: Any) -> None:
    for name, value in values.items():
        if name == "patience" and value is None:
            continue
        integer = name in ("epochs", "batch_size", "patience")
        bad = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
        if bad or value < 0 or (value == 0 and name != "lam"):
            kind = (
                "positive integer"
                if integer
                else "non-negative number"
                if name == "lam"
                else "positive number"
            )
            raise ValueError(f"{name}: expected a {kind}; got {value!r}")
