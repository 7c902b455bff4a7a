"""The state token of a model: what its results depend on besides the inputs.

A memoized result is reused only while the token is unchanged. It covers:

- every parameter, buffer and plain tensor attribute: identity, storage, version
  counter, shape, dtype, device and a checksum of the values (:mod:`.digest`), so in-place
  updates, optimizer steps, ``load_state_dict`` and writes through ``.data`` or NumPy
  views all change it;
- the module tree: each submodule's name and class, its ``extra_repr()`` (the
  hyper-parameters torch's modules declare: ``eps``, ``momentum``, ``stride``, ...) and
  its plain attributes (numbers, strings, ``None`` and tuples or lists of them), so a
  swapped submodule or a changed hyper-parameter changes it; the training flag is left
  out, because computations run in eval mode whatever it is;
- the forward and backward hooks registered on each submodule and globally
  (``torch.nn.modules.module.register_module_forward_hook``, ...), except the library's
  own while a computation runs.

A module whose forward changes its own plain attributes (a call counter) therefore has a
new token after each computation, and is recomputed rather than served from the memo.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch.nn.modules import module as torch_module

from .digest import content_digest
from .readiness import check_model_ready

__all__ = ["state_token"]

_HOOKS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_is_full_backward_hook",
)
_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_hooks_with_kwargs",
    "_global_forward_hooks_always_called",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_is_full_backward_hook",
)
_SCALARS = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device)
# Attributes that do not change what a computation returns.
_IGNORED = {"training", "call_super_init", "dump_patches"} | set(_HOOKS)


def state_token(module: torch.nn.Module) -> str:
    """A token of everything ``module``'s results depend on (see the module docstring).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    >>> before = state_token(net)
    >>> with torch.no_grad():
    ...     _ = net[0].weight.data.mul_(2)  # bypasses the version counter
    >>> after = state_token(net); after == before
    False
    >>> net[1] = torch.nn.Tanh()
    >>> state_token(net) == after
    False
    >>> _ = net.train(); state_token(net) == state_token(net.eval())
    True
    """
    check_model_ready(module)  # lazy or meta weights have no values to key
    tensors = list(dict.fromkeys([*module.parameters(), *module.buffers()]))
    parts = []
    for name, sub in module.named_modules():
        attributes, extra = _attributes(sub)
        tensors += [t for t in extra if not any(t is s for s in tensors)]
        parts.append(f"{name}:{_class_name(sub)}:{_extra_repr(sub)}:{attributes}:{_hooks(sub)}")
    for t in tensors:
        parts.append(f"{id(t)}:{t.data_ptr()}:{_version(t)}:{tuple(t.shape)}:{t.dtype}:{t.device}")
    parts.append(_global_hooks())
    parts.append(str(content_digest(tensors)))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def _class_name(module: torch.nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}@{id(cls)}"


def _extra_repr(module: torch.nn.Module) -> str:
    try:
        return module.extra_repr()
    except Exception:  # a user's extra_repr may fail; the attributes still count
        return "?"


def _attributes(module: torch.nn.Module) -> tuple[str, list[torch.Tensor]]:
    """The module's plain attributes as text, and the tensors among its attributes."""
    plain, tensors = [], []
    for key, value in vars(module).items():
        if key in _IGNORED:
            continue
        if isinstance(value, torch.Tensor):
            tensors.append(value)
        elif _plain(value):
            plain.append(f"{key}={value!r}")
    return ",".join(plain), tensors


def _plain(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, (tuple, list)) and len(value) <= 64:
        return all(isinstance(v, _SCALARS) for v in value)
    return False


def _hooks(module: torch.nn.Module) -> str:
    return _hook_text(module, _HOOKS)


def _global_hooks() -> str:
    return _hook_text(torch_module, _GLOBAL_HOOKS)


def _hook_text(owner: object, attributes: tuple[str, ...]) -> str:
    """The user's hooks (their identities) and hook flags held by ``owner``, as text.

    The library's own hooks (layer capture while a computation runs in another thread)
    are left out, and so are the flags (``with_kwargs``, ``always_call``) kept under their
    handles' ids.
    """
    tables = {a: getattr(owner, a, None) for a in attributes}
    ours = {
        key
        for hooks in tables.values()
        if isinstance(hooks, dict)
        for key, value in hooks.items()
        if getattr(value, "_ialgebra_hook", False)
    }
    found = []
    for attribute, hooks in tables.items():
        if isinstance(hooks, dict):
            ids = [
                (key, value if isinstance(value, bool) else id(value))
                for key, value in hooks.items()
                if key not in ours
            ]
            if ids:
                found.append(f"{attribute}{ids}")
        elif hooks is not None:
            found.append(f"{attribute}={hooks!r}")
    return ";".join(found)


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # inference tensors have no version counter
        return -1
