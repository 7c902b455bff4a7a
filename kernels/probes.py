"""One-sample probes, so bad input fails when a query is built rather than when it runs.

A layer's output (its shape: unit indices, CAM grids) and DeepLift's rules (an unsupported
nonlinearity) can only be checked by running the model. A probe runs it once on the first
sample, without changing it (:func:`~algebra.kernels.guard.guarded`), and remembers the
answer per model, input shape and layer.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import torch

from .capture import captured, own_hooks, tagged
from .deeplift import deeplift_rules
from .guard import device_of, guarded
from .layer_calls import LayerSite, element
from .outputs import OutputSpec, pick
from .pairs import paired

_seen: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def _key(x: torch.Tensor, what: str) -> tuple:
    return (tuple(x.shape[1:]), x.dtype, x.device.type, what)


@contextlib.contextmanager
def _quietly_guarded(module: torch.nn.Module) -> Iterator[None]:
    # A model in training mode is warned about when it is computed, not by a probe.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="model (is|has submodules) in training mode")
        with guarded(module):
            yield


def layer_output(module: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The layer's output for the first sample of ``x``: ``[1, ...]``, without gradients.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU())
    >>> tuple(layer_output(net, torch.rand(4, 3, 8, 8), "0").shape)
    (1, 5, 6, 6)
    """
    seen = _seen.setdefault(module, {})
    key = _key(x, f"layer:{layer}")
    if key not in seen:
        sample = x[:1].to(device_of(module, default=x.device))
        with _quietly_guarded(module), torch.no_grad(), captured(module, (layer,)) as acts:
            module(sample)
        seen[key] = acts[layer].detach()
    return seen[key]  # type: ignore[return-value]


def check_deeplift(module: torch.nn.Module, x: torch.Tensor) -> None:
    """Run the first sample paired with a zero reference under DeepLift's rules: a
    ``ValueError`` names a nonlinearity without a rule.

    Examples
    --------
    >>> check_deeplift(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()), torch.ones(2, 3))
    >>> check_deeplift(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.GELU()), torch.ones(2, 3))
    Traceback (most recent call last):
    ValueError: deeplift: the model applies gelu, which has no DeepLift rule; ...
    """
    seen = _seen.setdefault(module, {})
    key = _key(x, "deeplift")
    if key in seen:
        return
    sample = x[:1].to(device_of(module, default=x.device))
    points = paired(sample, 0.0).requires_grad_(True)
    with _quietly_guarded(module), torch.enable_grad(), deeplift_rules(module):
        module(points)
    seen[key] = True


def layer_calls(module: torch.nn.Module, x: torch.Tensor, name: str) -> list[tuple[tuple, Any]]:
    """Each call of the layer ``name`` on the first sample of ``x``: its positional inputs
    and its output, without gradients, so a call, an element of a tuple output or the
    layer's input can be checked when a query is built (:mod:`~algebra.kernels.layer_calls`).

    Examples
    --------
    >>> relu = torch.nn.ReLU()
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), relu, torch.nn.Linear(3, 3), relu)
    >>> [tuple(out.shape) for _, out in layer_calls(net, torch.ones(4, 2), "1")]
    [(1, 3), (1, 3)]
    """
    seen = _seen.setdefault(module, {})
    key = _key(x, f"calls:{name}")
    if key not in seen:
        calls: list[tuple[tuple, Any]] = []
        sub = dict(module.named_modules())[name]
        sample = x[:1].to(device_of(module, default=x.device))
        with own_hooks() as mine:

            @tagged
            def hook(_m: torch.nn.Module, args: tuple, out: Any) -> None:
                if mine():
                    calls.append((args, out))

            handle = sub.register_forward_hook(hook)
            try:
                with _quietly_guarded(module), torch.no_grad():
                    module(sample)
            finally:
                handle.remove()
        seen[key] = calls  # type: ignore[assignment]
    return seen[key]  # type: ignore[return-value]


def output_shape(module: torch.nn.Module, x: torch.Tensor, select: Any) -> tuple[int, ...]:
    """The shape of the scores ``select`` picks (:func:`~algebra.kernels.outputs.pick`) for
    the first sample of ``x``, ``[1, ...]``: raises what ``pick`` raises (an ``output=``
    that finds nothing) when a query is built.

    Examples
    --------
    >>> class LM(torch.nn.Module):
    ...     def forward(self, x):
    ...         return {"logits": x[..., None].expand(*x.shape, 7)}
    >>> output_shape(LM(), torch.ones(2, 5), None)
    (1, 5, 7)
    >>> output_shape(LM(), torch.ones(2, 5), "logit")
    Traceback (most recent call last):
    ValueError: output: the model's forward returns a dict with keys 'logits', which has no 'logit'. Did you mean 'logits'?
    """
    seen = _seen.setdefault(module, {})
    key = _key(x, f"output:{OutputSpec(select).key}")
    if key not in seen:
        sample = x[:1].to(device_of(module, default=x.device))
        with _quietly_guarded(module), torch.no_grad():
            seen[key] = tuple(pick(module(sample), select).shape)
    return seen[key]  # type: ignore[return-value]


def site_shape(module: torch.nn.Module, x: torch.Tensor, key: str) -> tuple[int, ...] | None:
    """One sample's shape of the tensor a layer key with options selects (a call, an element,
    the input: :mod:`~algebra.kernels.layer_calls`), from :func:`layer_calls`; ``None`` for
    a module's name alone (the memory profile measures those) or a call that is not made.

    Examples
    --------
    >>> lstm = torch.nn.LSTM(3, 4, batch_first=True)
    >>> site_shape(torch.nn.Sequential(lstm), torch.ones(2, 5, 3), "0[output=0]")
    (5, 4)
    """
    modules = dict(module.named_modules())
    site = LayerSite.parse(key, modules)
    if site.plain or site.name not in modules:
        return None
    calls = layer_calls(module, x, site.name)
    call = 0 if site.call in (None, "all") else site.call
    if call >= len(calls):
        return None
    args, out = calls[call]
    tensor = args[0] if site.input else element(out, site.output, site.name)
    return tuple(tensor.shape[1:])
