"""Forward hooks that capture or replace a layer's output, always removed on exit.

Hooks are registered on the user's module, which other threads may be running at the
same time; each hook acts only in the computation that registered it (:func:`own_hooks`).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch

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


def _check_tensor(name: str, output: object) -> torch.Tensor:
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"layer: {name!r} returns {type(output).__name__}; only layers whose output is "
            "a single tensor can be attributed"
        )
    return output


@contextlib.contextmanager
def captured(module: torch.nn.Module, names: tuple[str, ...]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named submodules during the forward passes inside the block.

    The hook hands a clone on to the rest of the network, so an in-place operation after
    the layer (``ReLU(inplace=True)``) cannot overwrite the captured activation.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(inplace=True))
    >>> with captured(net, ("0",)) as acts:
    ...     _ = net(torch.ones(4, 2))
    >>> acts["0"].shape
    torch.Size([4, 3])
    """
    acts: dict[str, torch.Tensor] = {}
    modules = dict(module.named_modules())
    if names:
        refuse_script(module)
    with contextlib.ExitStack() as stack:
        mine = stack.enter_context(own_hooks())
        for name in names:

            @tagged
            def hook(
                _m: torch.nn.Module, _i: object, out: object, name: str = name
            ) -> torch.Tensor | None:
                if not mine():  # another thread's forward pass
                    return None
                if name in acts:
                    raise ValueError(
                        f"layer {name!r} is called more than once in one forward pass; "
                        "attributing a reused layer is not supported"
                    )
                act = _check_tensor(name, out)
                if torch.is_grad_enabled() and not act.requires_grad:
                    # e.g. a layer that only reads (frozen) parameters: still attributable.
                    act = act.detach().requires_grad_(True)
                acts[name] = act
                return act.clone()

            stack.callback(modules[name].register_forward_hook(hook).remove)
        yield acts
        missing = [name for name in names if name not in acts]
        if missing:
            raise ValueError(
                f"layer: {missing[0]!r} is not called in the model's forward pass, so it has "
                "no activation to attribute"
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
    """Substitute ``value`` for the named submodule's output during the block.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())
    >>> with replaced(net, "0", -torch.ones(1, 3)):
    ...     net(torch.ones(1, 2))
    tensor([[0., 0., 0.]])
    """

    @tagged
    def hook(_m: torch.nn.Module, _i: object, out: object) -> torch.Tensor | None:
        if not mine():  # another thread's forward pass
            return None
        if _check_tensor(name, out).shape != value.shape:
            raise ValueError(
                f"layer {name!r}: replacement of shape {tuple(value.shape)} does not match "
                f"its output of shape {tuple(out.shape)}"  # type: ignore[union-attr]
            )
        return value.clone()

    refuse_script(module)
    with own_hooks() as mine:
        handle = dict(module.named_modules())[name].register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
