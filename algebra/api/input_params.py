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
from ..ir.players import PlayerSpecs
from ..ir.views import layer_of, source_of
from ..kernels.checks import content_token
from ..kernels.layer_baselines import LayerBaseline
from ..kernels.packed import packing_of
from ..kernels.players import player_mask
from ..kernels.probes import layer_output
from ..kernels.run_copies import players_of
from ..optimizer.simplify import player_spec
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
    values = _per_slot(layout, baseline, argument, partial(_one_baseline, n=source.n))
    packed = _packing(node).rows(values, rows.dtype, source.n, device=rows.device)
    return _given(packed, _shown(baseline))


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
    values = _per_slot(layout, baselines, argument, _reference_set)
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
    return _given(packed, _shown(baselines))


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
    values = _per_slot(layout, noise, "noise", _noise_draws, allow_default=False)
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


def packed_groups(view: Node, groups: Any) -> tuple[Shown, int]:
    """The players of several inputs as one mask over the packed rows, and their count.

    Each input's entry is ``None`` (its default players), ``ia.grid``/``ia.patches`` or an
    integer mask; masks keep their ids (the same id in two inputs is one player, as
    Captum's ``feature_mask``), the others are numbered after the ids before them.

    Examples
    --------
    >>> import algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a.sum(-1, keepdim=True) + b.sum(-1, keepdim=True)
    >>> q = ia.model(Two().eval()).on((torch.ones(2, 3), torch.ones(2, 2)))
    >>> ref, count = packed_groups(q.node, None)
    >>> ref.value.tolist(), count
    ([[0, 1, 2, 3, 4, -1]], 5)
    >>> packed_groups(q.node, (torch.tensor([0, 0, 1]), torch.tensor([1, 1])))[0].value.tolist()
    [[0, 0, 1, 1, 1, -1]]
    """
    layout = layout_of(view)
    assert layout is not None
    n = source_of(view).n
    entries = _per_slot(layout, groups, "groups", _players, default=None)
    parts, next_id = [], 0
    for slot in layout.slots:
        entry = entries[slot.name]
        given = isinstance(entry, torch.Tensor)
        if given:  # ids as given: the same id in two inputs is one player
            ids = _input_mask(entry, (n, *slot.shape), slot.name)
        else:
            ids = players_of(player_spec(entry, None), (1, *slot.shape)).ids
            ids = torch.where(ids >= 0, ids + next_id, ids)
        ids = ids.expand(ids.shape[0], *slot.shape)  # players may span dims of size 1
        next_id = max(next_id, int(ids.max()) + 1)
        parts.append(ids.reshape(ids.shape[0], -1))
    rows = max(p.shape[0] for p in parts)
    parts = [p.expand(rows, -1) for p in parts]
    mask = torch.cat([*parts, parts[0].new_full((rows, 1), -1)], dim=1)
    players = player_mask(mask, (n, mask.shape[1]))
    return _given(mask, "None" if groups is None else _shown(groups)), players.count


def _input_mask(mask: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """One input's integer mask, broadcast to ``[1 or N, ...]`` (ids checked over all inputs)."""
    if mask.is_floating_point() or mask.is_complex() or mask.ndim > len(shape):
        raise ValueError(
            f"groups of {name!r}: expected an integer mask broadcastable to {list(shape)}; got "
            f"{mask.dtype} of shape {list(mask.shape)}"
        )
    ids = mask.long().reshape((1,) * (len(shape) - mask.ndim) + tuple(mask.shape))
    try:
        torch.broadcast_shapes(ids.shape, shape)
    except RuntimeError:
        raise ValueError(
            f"groups of {name!r}: a mask of shape {list(mask.shape)} does not broadcast to "
            f"{list(shape)}"
        ) from None
    return ids.expand(ids.shape[0], *shape[1:])


def _per_slot(
    layout: InputLayout,
    given: Any,
    argument: str,
    check: Any,
    default: Any = 0.0,
    allow_default: bool = True,
) -> dict[str, Any]:
    """One value per attributed input from a tuple, a dict or one value for all."""
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


def _players(value: Any, slot: InputSlot, where: str) -> Any:
    if value is None or isinstance(value, PlayerSpecs):
        return value
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return torch.as_tensor(value).detach().cpu()
    raise TypeError(
        f"{where}: expected None, ia.grid(rows, cols), ia.patches(size) or an "
        f"integer tensor of player ids; got {type(value).__name__}"
    )


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
    text = f"embedding{list(baseline.shape)} at {layer!r}"
    return Shown(LayerBaseline(values, layer), f"given {text}|{content_token(values)}", text)


def _given(tensor: torch.Tensor, text: str) -> Shown:
    # Built here, never held by the user, so never modified in place: its token is what
    # was given (explain shows it) and a digest of the values (equal values, one node).
    return Shown(tensor, f"given {text}|{content_token(tensor)}", text)


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_shown(v) for v in value) + ")"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"tensor{list(value.shape)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)
