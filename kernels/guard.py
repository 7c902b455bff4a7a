"""Run a user's module without changing it: eval mode, frozen parameters, all restored.

Thread safety: computations on one model may run at the same time from several threads
(a web server's request handlers). Each submodule's training flag and each parameter's
``requires_grad`` are saved by the first computation that uses them and restored by the
last one to finish (a reference count per submodule and per parameter, under one lock),
so overlapping computations never restore each other's frozen state, and a submodule
shared by two models is handled once. Layer hooks act only for the computation that
registered them (:mod:`algebra.kernels.capture`), so a forward pass in another thread
sees none of them. What stays the caller's business: changing the model (its modes,
weights or structure) while a computation on it runs, and calling the model from other
code meanwhile, which then runs in eval mode with frozen parameters.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator

import torch
from torch.utils.weak import WeakIdKeyDictionary

_lock = threading.Lock()
# Per submodule and per parameter: [computations using it, the state it had before them].
# Keyed by identity: tensors compare element-wise, so a WeakKeyDictionary cannot hold them.
_in_use: WeakIdKeyDictionary = WeakIdKeyDictionary()


@contextlib.contextmanager
def guarded(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Evaluate ``module`` in eval mode with parameters frozen; restore both on exit.

    Parameters never receive gradients: attributions differentiate with respect to inputs
    and captured activations only. A module in training mode gets a warning, because
    dropout and batch norm would otherwise change the attributions. Safe to enter from
    several threads on the same module: the state is saved once and restored by the last
    to leave.

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
    named = list(module.named_modules())
    params = list(dict.fromkeys(module.parameters()))
    with _lock:
        # The modes the user set: saved ones when another computation holds the module.
        training = [name for name, m in named if _original(m, m.training)]
        for _, m in named:
            if _enter(m, m.training):
                m.training = False
        for p in params:
            if _enter(p, p.requires_grad):
                p.requires_grad_(False)
    try:
        if training:
            shown = ", ".join(repr(n) for n in training[:3]) + (
                ", ..." if len(training) > 3 else ""
            )
            what = (
                "is in training mode"
                if _original(module, module.training)
                else f"has submodules in training mode ({shown})"
            )
            warnings.warn(
                f"model {what}; attributions are computed in eval mode "
                "and the training mode is restored afterwards",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        yield module
    finally:
        with _lock:
            for _, m in named:
                mode = _leave(m)
                if mode is not None:
                    m.training = mode
            for p in params:
                flag = _leave(p)
                if flag is not None:
                    p.requires_grad_(flag)


def _original(obj: object, current: bool) -> bool:
    entry = _in_use.get(obj)
    return current if entry is None else entry[1]


def _enter(obj: object, state: bool) -> bool:
    """Count one more user of ``obj``; True for the first, which saves ``state``."""
    entry = _in_use.get(obj)
    if entry is None:
        _in_use[obj] = [1, state]
        return True
    entry[0] += 1
    return False


def _leave(obj: object) -> bool | None:
    """Count one user less; the saved state when it was the last, else None."""
    entry = _in_use[obj]
    entry[0] -= 1
    if entry[0]:
        return None
    del _in_use[obj]
    return entry[1]


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


def user_stacklevel() -> int:
    """Stack level of the first caller outside this library, so warnings point at user code.

    Examples
    --------
    >>> user_stacklevel() >= 1
    True
    """
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
