"""Run a user's module without changing it: eval mode, frozen parameters, all restored."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def guarded(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Evaluate ``module`` in eval mode with parameters frozen; restore both on exit.

    Parameters never receive gradients: attributions differentiate with respect to inputs
    and captured activations only. A module in training mode gets a warning, because
    dropout and batch norm would otherwise change the attributions.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 2).train()
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     with guarded(net) as m:
    ...         m.training, m.weight.requires_grad
    (False, False)
    >>> net.training, net.weight.requires_grad
    (True, True)
    """
    modes = {m: m.training for m in module.modules()}
    flags = {p: p.requires_grad for p in module.parameters()}
    training = [name for name, m in module.named_modules() if m.training]
    if training:
        shown = ", ".join(repr(n) for n in training[:3]) + (", ..." if len(training) > 3 else "")
        what = (
            "is in training mode"
            if module.training
            else f"has submodules in training mode ({shown})"
        )
        warnings.warn(
            f"model {what}; attributions are computed in eval mode "
            "and the training mode is restored afterwards",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )
    try:
        module.eval()
        for p in flags:
            p.requires_grad_(False)
        yield module
    finally:
        for m, mode in modes.items():
            m.training = mode
        for p, flag in flags.items():
            p.requires_grad_(flag)


def device_of(module: torch.nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of the module's first parameter or buffer (else ``default``, else CPU).

    Examples
    --------
    >>> device_of(torch.nn.ReLU())
    device(type='cpu')
    """
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return default or torch.device("cpu")


def _user_stacklevel() -> int:
    """Stack level of the first caller outside this library, so warnings point at user code."""
    ours = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(contextlib.__file__)]
    algebra = sys.modules.get("algebra")
    if algebra is not None and algebra.__file__:
        ours.append(os.path.dirname(os.path.abspath(algebra.__file__)))  # and its subpackages
    frame, level = sys._getframe(1), 1
    while frame is not None and _inside(os.path.abspath(frame.f_code.co_filename), ours):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level


def _inside(path: str, folders: list[str]) -> bool:
    return any(os.path.dirname(path) == f or path.startswith(f + os.sep) for f in folders)
