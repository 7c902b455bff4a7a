"""Parameters given per input, for queries on several inputs or token ids.

A baseline, a set of baselines, noise draws and players are given per attributed input
(a tuple in the inputs' order, a dict by name, or one value for all) and packed like the
inputs themselves (``kernels/inputs.py``), so every pass reads them as it reads one
tensor. Token ids take token ids as their baseline (:func:`tokens`); at a layer over
token ids, a floating tensor baseline is the layer's own activation (an embedding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from ..errors import did_you_mean
from ..ir.inputs import InputLayout, InputSlot, Shown, layout_of
from ..ir.node import Node
from ..ir.views import layer_of, source_of
from ..kernels.checks import content_token
from ..kernels.layer_baselines import LayerBaseline
from ..kernels.packed import packing_of
from ..kernels.probes import layer_output
from .inputs import check_token_ids


@dataclass(frozen=True)
class Tokens:
    """Token ids given as a baseline (build with :func:`tokens`)."""

    ids: Any

    def __repr__(self) -> str:
        ids = self.ids
        return f"tokens({ids if isinstance(ids, int) else f'tensor{list(ids.shape)}'})"


def tokens(ids: Any) -> Tokens:
    """Token ids as a baseline: one id for every token (``tokens(pad_id)``), or a tensor of
    ids broadcastable to the inputs' ``[N, L]``. Inputs that hold floats get ``0.0``.

    Parameters
    ----------
    ids : int or integer torch.Tensor

    Returns
    -------
    Tokens

    Examples
    --------
    >>> import algebra as ia
    >>> ia.tokens(0)
    tokens(0)
    >>> ia.tokens(-1)
    Traceback (most recent call last):
    ValueError: ids: expected a token id >= 0; got -1
    """
    if isinstance(ids, np.ndarray):
        ids = torch.from_numpy(ids)
    if isinstance(ids, torch.Tensor):
        if ids.is_floating_point() or ids.is_complex():
            raise TypeError(f"ids: token ids must be integers; got {ids.dtype}")
        if ids.numel() and int(ids.min()) < 0:
            raise ValueError(f"ids: expected token ids >= 0; got {int(ids.min())}")
        return Tokens(ids)
    if isinstance(ids, bool) or not isinstance(ids, (int, np.integer)):
        raise TypeError(f"ids: expected a token id (int) or a tensor of ids; got {ids!r}")
    if ids < 0:
        raise ValueError(f"ids: expected a token id >= 0; got {ids}")
    return Tokens(int(ids))


def _packing(node: Node) -> Any:
    packing = packing_of(source_of(node).model.torch_module)
    assert packing is not None
    return packing


def packed_baseline(node: Node, baseline: Any, argument: str = "baseline") -> Shown:
    """The baseline of a view on several inputs or token ids: packed rows, one per sample
    (each row's sample index kept), or, at a layer over token ids, the layer's activation.

    Examples
    --------
    >>> import algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a + b
    >>> q = ia.model(Two().eval()).on((torch.ones(2, 2), torch.ones(2, 2)))
    >>> ref = packed_baseline(q.node, (0.5, torch.zeros(2)))
    >>> ref.value.tolist(), ref.text
    ([[0.5, 0.5, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0, 1.0]], '(0.5, tensor[2])')
    >>> packed_baseline(q.node, (0.5,))
    Traceback (most recent call last):
    ValueError: baseline: expected 2 values, one per attributed input (a, b); got 1
    """
    layout = layout_of(node)
    assert layout is not None
    if getattr(baseline, "node", None) is not None:
        raise TypeError(
            f"{argument}: another query's inputs cannot be the baseline of several inputs or "
            "token ids; give a value per input"
        )
    source = source_of(node)
    rows = source.inputs.value
    layer = layer_of(node)
    ids_only = all(s.integer for s in layout.slots)
    if layer is not None and ids_only and _floating_tensor(baseline):
        return _layer_baseline(node, layer, baseline, argument)
    values = per_input(layout, baseline, argument, partial(_one_baseline, n=source.n))
    packed = _packing(node).rows(values, rows.dtype, source.n, device=rows.device)
    return given_ref(packed, shown_value(baseline))


def packed_baselines(node: Node, baselines: Any, argument: str = "baselines") -> Shown:
    """A set of ``B`` references ``[B, ...]`` per attributed input, packed (the passes pin
    each reference's sample index to the sample it is drawn for).

    Examples
    --------
    >>> import algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a + b
    >>> q = ia.model(Two().eval()).on((torch.ones(2, 2), torch.ones(2, 2)))
    >>> tuple(packed_baselines(q.node, (torch.zeros(3, 2), torch.ones(3, 2))).value.shape)
    (3, 5)
    >>> packed_baselines(q.node, (torch.zeros(3, 2), torch.ones(4, 2)))
    Traceback (most recent call last):
    ValueError: baselines: 'b' has 4 references, but 'a' has 3; every input needs the same number B
    """
    layout = layout_of(node)
    assert layout is not None
    values = per_input(layout, baselines, argument, _reference_set)
    counts = {name: v.shape[0] for name, v in values.items()}
    first = next(iter(counts))
    for name, count in counts.items():
        if count != counts[first]:
            raise ValueError(
                f"{argument}: {name!r} has {count} references, but {first!r} has "
                f"{counts[first]}; every input needs the same number B"
            )
    rows = source_of(node).inputs.value
    packed = _packing(node).rows(values, rows.dtype, counts[first], per_sample=False)
    return given_ref(packed, shown_value(baselines))


def packed_noise(node: Node, noise: Any) -> torch.Tensor:
    """Given noise draws per attributed input, ``[S, N, ...]`` or ``[S, ...]`` each, packed
    to ``[S, N, width]`` (zero on the sample index).

    Examples
    --------
    >>> import algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a + b
    >>> q = ia.model(Two().eval()).on({"a": torch.ones(2, 2), "b": torch.ones(2, 2)})
    >>> tuple(packed_noise(q.node, {"a": torch.ones(4, 2, 2), "b": torch.ones(4, 2)}).shape)
    (4, 2, 5)
    """
    layout = layout_of(node)
    assert layout is not None
    n = source_of(node).n
    values = per_input(layout, noise, "noise", _noise_draws, allow_default=False)
    samples = {v.shape[0] for v in values.values()}
    if len(samples) != 1:
        raise ValueError(f"noise: every input needs the same number of draws S; got {samples}")
    s = samples.pop()
    dtype = source_of(node).inputs.value.dtype
    parts = [
        values[slot.name].to(dtype).expand(s, n, *slot.shape).reshape(s, n, -1)
        for slot in layout.slots
    ]
    return torch.cat([*parts, parts[0].new_zeros(s, n, 1)], dim=2)


def per_input(
    layout: InputLayout,
    given: Any,
    argument: str,
    check: Any,
    default: Any = 0.0,
    allow_default: bool = True,
) -> dict[str, Any]:
    """One value per attributed input, each passed through ``check(value, slot, where)``:
    from a tuple (in the inputs' order), a dict by name (inputs left out get ``default``
    unless not ``allow_default``) or one value for all (not one tensor for several).

    Examples
    --------
    >>> from algebra.ir.inputs import InputSlot
    >>> slots = (InputSlot("a", (2,), ("f",), 0, 2, False), InputSlot("b", (1,), ("f",), 2, 3, False))
    >>> layout = InputLayout("dict", slots, (), (), False, None, (), "k")
    >>> per_input(layout, {"b": 1.0}, "baseline", lambda v, slot, where: v)
    {'a': 0.0, 'b': 1.0}
    >>> per_input(layout, (1.0,), "baseline", lambda v, slot, where: v)
    Traceback (most recent call last):
    ValueError: baseline: expected 2 values, one per attributed input (a, b); got 1
    """
    slots = layout.slots
    names = ", ".join(s.name for s in slots)
    if isinstance(given, Mapping):
        for key in given:
            if key not in layout.names:
                raise ValueError(
                    f"{argument}: {key!r} is not an attributed input ({names})."
                    + did_you_mean(str(key), layout.names)
                )
        missing = [s.name for s in slots if s.name not in given]
        if missing and not allow_default:
            raise ValueError(f"{argument}: no value for {', '.join(map(repr, missing))}")
        picked = {s.name: given.get(s.name, default) for s in slots}
    elif isinstance(given, (tuple, list)):
        if len(given) != len(slots):
            raise ValueError(
                f"{argument}: expected {len(slots)} values, one per attributed input "
                f"({names}); got {len(given)}"
            )
        picked = {s.name: v for s, v in zip(slots, given, strict=True)}
    elif len(slots) == 1 or not isinstance(given, (torch.Tensor, np.ndarray)):
        picked = {s.name: given for s in slots}
    else:
        raise ValueError(
            f"{argument}: one tensor for {len(slots)} attributed inputs ({names}); give a "
            "tuple or a dict with one per input"
        )
    several = len(slots) > 1
    out = {}
    for name, value in picked.items():
        where = f"{argument} of {name!r}" if several else argument
        out[name] = check(value, layout.slot(name), where)
    return out


def _one_baseline(value: Any, slot: InputSlot, where: str, n: int) -> Any:
    if isinstance(value, Tokens):
        value = value.ids if slot.integer else 0.0
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise TypeError(f"{where}: expected a number or a tensor; got {type(value).__name__}")
    if not isinstance(value, torch.Tensor):
        if not np.isfinite(value):
            raise ValueError(f"{where}: expected a finite number; got {value}")
        if slot.integer and (value < 0 or not float(value).is_integer()):
            raise ValueError(
                f"{where}: {slot.name!r} holds token ids; expected an id (ia.tokens(pad_id)); "
                f"got {value}"
            )
        return float(value)
    _broadcasts(value, (n, *slot.shape), slot.name, where)
    if slot.integer:
        return check_token_ids(value, torch.float64, where)
    if not value.is_floating_point():
        raise TypeError(f"{where}: {slot.name!r} holds floats; got a {value.dtype} tensor")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{where}: values must be finite")
    return value


def _reference_set(value: Any, slot: InputSlot, where: str) -> Any:
    if isinstance(value, Tokens):
        value = value.ids
    shape = ", ".join(str(d) for d in slot.shape)
    if not isinstance(value, torch.Tensor) or tuple(value.shape[1:]) != slot.shape:
        got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{where}: expected a tensor [B, {shape}] of references; got {got}")
    if slot.integer:
        return check_token_ids(value, torch.float64, where)
    if not value.is_floating_point() or not bool(torch.isfinite(value).all()):
        raise ValueError(f"{where}: expected finite floating-point references")
    return value


def _noise_draws(value: Any, slot: InputSlot, where: str) -> Any:
    ok = isinstance(value, torch.Tensor) and value.is_floating_point()
    shape = list(slot.shape)
    if ok and tuple(value.shape[2:]) != slot.shape and tuple(value.shape[1:]) != slot.shape:
        ok = False
    if not ok or not bool(torch.isfinite(value).all()):
        got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            f"{where}: expected finite draws [S, N, {', '.join(map(str, shape))}]"
            f" or [S, {', '.join(map(str, shape))}]; got {got}"
        )
    return value if value.ndim == len(slot.shape) + 2 else value[:, None]


def _broadcasts(value: torch.Tensor, shape: tuple[int, ...], name: str, where: str) -> None:
    try:
        fits = torch.broadcast_shapes(value.shape, shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{where}: shape {list(value.shape)} does not broadcast to {name!r}'s {list(shape)}"
        )


def _floating_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _layer_baseline(node: Node, layer: str, baseline: torch.Tensor, argument: str) -> Shown:
    source = source_of(node)
    acts = layer_output(source.model.torch_module, source.inputs.value, layer)
    shape = (source.n, *acts.shape[1:])
    try:
        fits = torch.broadcast_shapes(baseline.shape, shape) == shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{argument}: an embedding baseline of shape {list(baseline.shape)} does not "
            f"broadcast to layer {layer!r}'s output {list(shape)}"
        )
    if not bool(torch.isfinite(baseline).all()):
        raise ValueError(f"{argument}: values must be finite")
    values = baseline.detach().to(acts.dtype)
    return given_ref(LayerBaseline(values, layer), f"embedding{list(baseline.shape)} at {layer!r}")


def given_ref(tensor: Any, text: str) -> Shown:
    """A packed value as a node holds it, shown as ``text`` (what the user gave).

    Built here, never held by the user, so never modified in place: its token is the text
    (``explain()`` shows it) and a digest of the values (equal values: one node).

    Examples
    --------
    >>> ref = given_ref(torch.zeros(2), "(0.0, 0.0)")
    >>> ref.text, ref.token.startswith("given (0.0, 0.0)|values:")
    ('(0.0, 0.0)', True)
    """
    values = tensor.values if isinstance(tensor, LayerBaseline) else tensor
    return Shown(tensor, f"given {text}|{content_token(values)}", text)


def shown_value(value: Any) -> str:
    """A value given per input as plans and attributes show it (tensors by shape).

    Examples
    --------
    >>> shown_value((0, torch.zeros(3, 2))), shown_value({"ids": tokens(0)})
    ('(0.0, tensor[3, 2])', "{'ids': tokens(0)}")
    """
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(shown_value(v) for v in value) + ")"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {shown_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"tensor{list(value.shape)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)
