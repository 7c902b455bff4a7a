"""Players of several inputs (or token ids) for the perturbation methods: one integer mask
over the packed rows, the features of every input playing together (as Captum's tuple
``feature_mask``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..ir.inputs import InputSlot, Shown, layout_of
from ..ir.node import Node
from ..ir.players import PlayerSpecs
from ..ir.views import source_of
from ..kernels.players import player_mask
from ..kernels.run_copies import players_of
from ..optimizer.simplify import player_spec
from .input_params import given_ref, per_input, shown_value


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
    entries = per_input(layout, groups, "groups", _players, default=None)
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
    return given_ref(mask, "None" if groups is None else shown_value(groups)), players.count


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


def _players(value: Any, slot: InputSlot, where: str) -> Any:
    if value is None or isinstance(value, PlayerSpecs):
        return value
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return torch.as_tensor(value).detach().cpu()
    raise TypeError(
        f"{where}: expected None, ia.grid(rows, cols), ia.patches(size) or an "
        f"integer tensor of player ids; got {type(value).__name__}"
    )
