"""Forward hooks that capture or replace a layer's output, always removed on exit.

Hooks are registered on the user's module, which other threads may be running at the
same time; each hook acts only in the computation that registered it (:func:`own_hooks`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .layer_calls import LayerSite, capture_hook, replace_hook, stacked_calls

# The hook owners active in this thread (each thread starts with an empty context).
_owners: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "ialgebra_hook_owners", default=frozenset()
)


def tagged(hook: Callable) -> Callable:
    """Mark a hook as the library's, so model state tokens leave it out (:mod:`.state`).

    Examples
    --------
    >>> tagged(lambda *args: None)._ialgebra_hook
    True
    """
    hook._ialgebra_hook = True  # type: ignore[attr-defined]
    return hook


@contextlib.contextmanager
def own_hooks() -> Iterator[Callable[[], bool]]:
    """A test, for hooks, that is true only inside this block in this thread.

    A forward pass in another thread calls the same hook objects; they must do nothing
    there.

    Examples
    --------
    >>> import threading
    >>> seen = []
    >>> with own_hooks() as mine:
    ...     seen.append(mine())
    ...     t = threading.Thread(target=lambda: seen.append(mine())); t.start(); t.join()
    >>> seen, mine()
    ([True, False], False)
    """
    key = object()
    token = _owners.set(_owners.get() | {id(key)})
    try:
        yield lambda: id(key) in _owners.get()
    finally:
        _owners.reset(token)


@contextlib.contextmanager
def captured(module: torch.nn.Module, names: tuple[str, ...]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named submodules during the forward passes inside the block.

    A name may select one call of a reused module, an element of a tuple output or the
    layer's input (:mod:`~algebra.kernels.layer_calls`). The hook hands a clone on to the
    rest of the network, so an in-place operation after the layer (``ReLU(inplace=True)``)
    cannot overwrite the captured activation.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(inplace=True))
    >>> with captured(net, ("0", "1[input]")) as acts:
    ...     _ = net(torch.ones(4, 2))
    >>> acts["0"].shape, torch.equal(acts["0"], acts["1[input]"])
    (torch.Size([4, 3]), True)
    """
    acts: dict[str, torch.Tensor] = {}
    modules = dict(module.named_modules())
    if names:
        refuse_script(module)
    with contextlib.ExitStack() as stack:
        mine = stack.enter_context(own_hooks())
        counts = _counted_per_forward(module, names, stack, mine)
        for name in names:
            site = LayerSite.parse(name, modules)
            hook = tagged(capture_hook(site, name, acts, counts, mine))
            stack.callback(_register(modules[site.name], hook, site.input).remove)
        yield acts
        missing = [name for name in names if name not in acts]
        if missing:
            raise ValueError(_not_called(LayerSite.parse(missing[0], modules), counts))
        stacked_calls(acts)


def _register(sub: torch.nn.Module, hook: Callable, pre: bool) -> Any:
    return sub.register_forward_pre_hook(hook) if pre else sub.register_forward_hook(hook)


def _counted_per_forward(
    module: torch.nn.Module,
    names: tuple[str, ...],
    stack: contextlib.ExitStack,
    mine: Callable[[], bool],
) -> dict[str, int]:
    """Calls of each hooked layer, counted afresh at every forward of the whole model."""
    counts: dict[str, int] = {}

    @tagged
    def reset(_m: torch.nn.Module, _args: object) -> None:
        if mine():
            counts.clear()

    if names:
        stack.callback(module.register_forward_pre_hook(reset).remove)
    return counts


def _not_called(site: LayerSite, counts: dict[str, int]) -> str:
    calls = counts.get(site.key, -1) + 1
    if calls and isinstance(site.call, int):
        return (
            f"call: layer {site.name!r} is called {calls} time{'s' * (calls > 1)} in one "
            f"forward pass; call={site.call} is beyond them (valid 0..{calls - 1})"
        )
    return (
        f"layer: {site.name!r} is not called in the model's forward pass, so it has no "
        "activation to attribute"
    )


def hookable(module: torch.nn.Module) -> bool:
    """Whether forward hooks can be registered (TorchScript modules refuse them).

    Examples
    --------
    >>> hookable(torch.nn.Linear(2, 2)), hookable(torch.jit.script(torch.nn.Linear(2, 2)))
    (True, False)
    """
    return not any(isinstance(m, torch.jit.ScriptModule) for m in module.modules())


def refuse_script(module: torch.nn.Module) -> None:
    """Raise a clear ``ValueError`` for TorchScript models, which refuse forward hooks.

    Examples
    --------
    >>> refuse_script(torch.jit.script(torch.nn.Linear(2, 2)))
    Traceback (most recent call last):
    ValueError: layer: a TorchScript model cannot have its layers selected (TorchScript refuses forward hooks); attribute its input, or load the model as a torch.export archive or a Python module
    """
    if not hookable(module):
        raise ValueError(
            "layer: a TorchScript model cannot have its layers selected (TorchScript refuses "
            "forward hooks); attribute its input, or load the model as a torch.export archive "
            "or a Python module"
        )


@contextlib.contextmanager
def replaced(module: torch.nn.Module, name: str, value: torch.Tensor) -> Iterator[None]:
    """Substitute ``value`` for the named submodule's output during the block (or for the
    tensor the name selects: :mod:`~algebra.kernels.layer_calls`).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
    >>> with replaced(net, "0", -torch.ones(1, 3)):
    ...     net(torch.ones(1, 2))
    tensor([[0., 0., 0.]])
    """
    refuse_script(module)
    modules = dict(module.named_modules())
    site = LayerSite.parse(name, modules)
    with contextlib.ExitStack() as stack:
        mine = stack.enter_context(own_hooks())
        counts = _counted_per_forward(module, (name,), stack, mine)
        hook = tagged(replace_hook(site, value, counts, mine))
        stack.callback(_register(modules[site.name], hook, site.input).remove)
        yield
