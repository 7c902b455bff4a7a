"""Which tensor of a layer is attributed: one call of a reused module, an element of a
tuple output, or the layer's input.

A plan names what it captures or replaces at a layer by a key: the module's name as in
``named_modules()``, or the name with options in brackets,
``name[call=1, output=0, input]``: ``call`` picks one call of a module called more than
once in a forward (counted from 0 within each forward of the model), ``output`` an element
of a tuple (or a key of a dict) output, ``input`` the layer's first positional input
instead of its output (Captum's ``attribute_to_layer_input``). ``call=all`` reads every
call, stacked along dim 1 (probes only; attributions of every call are one per call).
:mod:`~algebra.kernels.capture` registers the hooks these functions build.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

_OPTION = re.compile(r"(call|output)=(\d+|all|'[^']*')|(input)")


@dataclass(frozen=True)
class LayerSite:
    """A layer's name and which of its tensors is read.

    Examples
    --------
    >>> site = LayerSite.parse("lstm[call=1, output=0]")
    >>> site.name, site.call, site.output, site.input, site.key
    ('lstm', 1, 0, False, 'lstm[call=1, output=0]')
    >>> LayerSite.parse("encoder.fc").plain, LayerSite("fc", input=True).key
    (True, 'fc[input]')
    """

    name: str
    call: int | str | None = None
    output: int | str | None = None
    input: bool = False

    @property
    def plain(self) -> bool:
        """Whether the site is a module's only output (the name alone)."""
        return self.call is None and self.output is None and not self.input

    @property
    def key(self) -> str:
        """The site as plans name it."""
        options = []
        if self.call is not None:
            options.append(f"call={self.call}")
        if self.output is not None:
            options.append(f"output={self.output!r}")
        if self.input:
            options.append("input")
        return self.name + (f"[{', '.join(options)}]" if options else "")

    @classmethod
    def parse(cls, key: str, names: Any = ()) -> LayerSite:
        """The site a key names (a key that is a module's name in ``names`` is that module).

        Examples
        --------
        >>> LayerSite.parse("relu[call=all, input]")
        LayerSite(name='relu', call='all', output=None, input=True)
        """
        if key in names or not key.endswith("]") or "[" not in key:
            return cls(key)
        name, _, rest = key[:-1].partition("[")
        found: dict[str, Any] = {}
        for part in rest.split(", "):
            match = _OPTION.fullmatch(part)
            if match is None:
                raise ValueError(f"layer: cannot read the option {part!r} of {key!r}")
            if match.group(3):
                found["input"] = True
                continue
            value = match.group(2)
            found[match.group(1)] = (
                value[1:-1] if value.startswith("'") else value if value == "all" else int(value)
            )
        return cls(name, **found)


def element(out: Any, index: int | str | None, name: str) -> torch.Tensor:
    """The tensor a layer's output (or input) gives at ``index`` (``None``: itself).

    Examples
    --------
    >>> element((torch.ones(2), (torch.zeros(1),)), 0, "lstm").shape
    torch.Size([2])
    >>> element((torch.ones(2), torch.zeros(1)), None, "lstm")
    Traceback (most recent call last):
    ValueError: layer: 'lstm' returns a tuple of 2 elements, not a tensor; select one with q.layer('lstm', output=0)
    """
    if index is None:
        value = out
    elif isinstance(out, Mapping) and index in out:
        value = out[index]
    elif isinstance(index, int) and isinstance(out, (tuple, list)):
        if not -len(out) <= index < len(out):
            raise ValueError(
                f"output: layer {name!r} returns {len(out)} elements; index {index} is outside "
                f"them (valid 0..{len(out) - 1})"
            )
        value = out[index]
    elif isinstance(index, str) and not isinstance(out, Mapping) and hasattr(out, index):
        value = getattr(out, index)
    else:
        raise ValueError(f"output: layer {name!r} returns {_shown(out)}, which has no {index!r}")
    if isinstance(value, torch.Tensor):
        return value
    if index is None:
        first = 0 if isinstance(out, (tuple, list)) else "name"
        raise ValueError(
            f"layer: {name!r} returns {_shown(out)}, not a tensor; select one with "
            f"q.layer({name!r}, output={first!r})"
        )
    raise ValueError(
        f"output: element {index!r} of layer {name!r}'s output is {_shown(value)}, not a tensor"
    )


def _shown(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} elements"
    return f"a {type(value).__name__}"


def with_element(out: Any, index: int | str | None, value: torch.Tensor) -> Any:
    """``out`` with the tensor at ``index`` replaced by ``value`` (a copy; ``out`` is kept).

    Examples
    --------
    >>> with_element((1, 2, 3), 1, torch.zeros(1))
    (1, tensor([0.]), 3)
    """
    if index is None:
        return value
    if isinstance(out, Mapping):
        changed = copy.copy(out)
        changed[index] = value  # type: ignore[index]
        return changed
    if isinstance(out, (tuple, list)):
        items = list(out)
        items[index] = value  # type: ignore[index]
        if hasattr(out, "_fields"):  # a namedtuple
            return type(out)(*items)
        return type(out)(items)
    changed = copy.copy(out)
    setattr(changed, index, value)  # type: ignore[arg-type]
    return changed


Counts = dict[str, int]


def _this_call(site: LayerSite, key: str, counts: Counts) -> int | None:
    """Count a call of the site's module; the call's index when it is the one to read."""
    k = counts[key] = counts.get(key, -1) + 1
    if site.call is None and k > 0:
        raise ValueError(
            f"layer {site.name!r} is called more than once in one forward pass; choose a "
            f"call with q.layer({site.name!r}, call=k) (k from 0), or every call with "
            "call='all'"
        )
    if isinstance(site.call, int) and k != site.call:
        return None
    return k


def _differentiable(t: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and not t.requires_grad:
        # e.g. a layer that only reads (frozen) parameters: still attributable.
        return t.detach().requires_grad_(True)
    return t


def capture_hook(
    site: LayerSite, key: str, acts: dict[str, Any], counts: Counts, mine: Callable[[], bool]
) -> Callable[..., Any]:
    """A forward hook (a pre-hook for an input site) that records the site's tensor in
    ``acts[key]`` and hands a clone on, so an in-place operation after the layer cannot
    overwrite it; ``call='all'`` records a list of every call's tensor.

    Examples
    --------
    >>> lstm = torch.nn.LSTM(3, 4, batch_first=True)
    >>> acts = {}
    >>> handle = lstm.register_forward_hook(
    ...     capture_hook(LayerSite("lstm", output=0), "k", acts, {}, lambda: True))
    >>> _ = lstm(torch.ones(2, 5, 3)); handle.remove()
    >>> tuple(acts["k"].shape)
    (2, 5, 4)
    """

    def record(t: torch.Tensor) -> torch.Tensor:
        act = _differentiable(t)
        if site.call == "all":
            acts.setdefault(key, []).append(act)
        else:
            acts[key] = act
        return act.clone()

    if site.input:

        def pre_hook(_m: torch.nn.Module, args: tuple) -> tuple | None:
            if not mine() or _this_call(site, key, counts) is None:
                return None
            if not args or not isinstance(args[0], torch.Tensor):
                raise ValueError(
                    f"input: layer {site.name!r} is called without a tensor as its first "
                    "positional input, so its input cannot be attributed"
                )
            return (record(args[0]), *args[1:])

        return pre_hook

    def hook(_m: torch.nn.Module, _args: tuple, out: Any) -> Any:
        if not mine() or _this_call(site, key, counts) is None:
            return None
        return with_element(out, site.output, record(element(out, site.output, site.name)))

    return hook


def replace_hook(
    site: LayerSite, value: torch.Tensor, counts: Counts, mine: Callable[[], bool]
) -> Callable[..., Any]:
    """A forward hook (a pre-hook for an input site) that substitutes ``value`` for the
    site's tensor; a plain site replaces every call.

    Examples
    --------
    >>> relu = torch.nn.ReLU()
    >>> net = torch.nn.Sequential(relu, relu)
    >>> handle = relu.register_forward_hook(
    ...     replace_hook(LayerSite("0", call=0), torch.full((1, 2), -3.0), {}, lambda: True))
    >>> net(torch.ones(1, 2)), handle.remove()
    (tensor([[0., 0.]]), None)
    """
    every = site.call is None

    def swap(current: torch.Tensor) -> torch.Tensor:
        if current.shape != value.shape:
            raise ValueError(
                f"layer {site.key!r}: replacement of shape {tuple(value.shape)} does not match "
                f"its tensor of shape {tuple(current.shape)}"
            )
        return value.clone()

    def chosen() -> bool:
        if every:
            return True
        return _this_call(site, site.key, counts) is not None

    if site.input:

        def pre_hook(_m: torch.nn.Module, args: tuple) -> tuple | None:
            if not mine() or not chosen():
                return None
            return (swap(args[0]), *args[1:])

        return pre_hook

    def hook(_m: torch.nn.Module, _args: tuple, out: Any) -> Any:
        if not mine() or not chosen():
            return None
        return with_element(out, site.output, swap(element(out, site.output, site.name)))

    return hook


def stacked_calls(acts: dict[str, Any]) -> None:
    """Every ``call='all'`` entry of ``acts`` (a list of each call's tensor) stacked along
    dim 1, ``[N, calls, ...]``; calls of different shapes are refused.

    Examples
    --------
    >>> acts = {"relu[call=all]": [torch.zeros(2, 3), torch.ones(2, 3)]}
    >>> stacked_calls(acts); tuple(acts["relu[call=all]"].shape)
    (2, 2, 3)
    """
    for key, value in acts.items():
        if isinstance(value, list):
            shapes = {tuple(t.shape) for t in value}
            if len(shapes) > 1:
                raise ValueError(
                    f"call: the calls of {key!r} give tensors of different shapes "
                    f"{sorted(shapes)}; call='all' stacks calls of one shape: choose one with "
                    "call=k"
                )
            acts[key] = torch.stack(value, 1)
