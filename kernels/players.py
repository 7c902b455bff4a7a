"""Players of a perturbation game: which player each input feature belongs to.

A player map is an integer tensor broadcastable to the inputs ``[N, *features]``: its first
dim is 1 (the same players for every sample) or ``N`` (players per sample), and id ``-1``
marks a feature that is not a player (it always keeps its input value, e.g. outside the
window of a projection). Ids of players run ``0 .. count - 1`` without gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Window = tuple[int, int, int, int]


@dataclass(frozen=True)
class Players:
    """An integer player map ``ids`` (``-1``: not a player) and the number of players."""

    ids: torch.Tensor
    count: int


def player_mask(groups: torch.Tensor, shape: tuple[int, ...]) -> Players:
    """Players from a user's integer mask broadcastable to inputs of ``shape`` ``[N, ...]``.

    A mask with fewer dims than the inputs gets leading dims of 1 (so a mask without a batch
    dim is shared by every sample). Ids must be ``0 .. P - 1`` without gaps; ``-1`` marks
    features that are not players.

    Examples
    --------
    >>> p = player_mask(torch.tensor([0, 0, 1]), (2, 3))
    >>> p.ids, p.count
    (tensor([[0, 0, 1]]), 2)
    >>> player_mask(torch.tensor([0, 2, 2]), (2, 3))
    Traceback (most recent call last):
    ValueError: groups: player ids must run 0..P-1 without gaps; id 1 is missing (ids present: 0, 2)
    """
    if not isinstance(groups, torch.Tensor):
        raise TypeError(f"groups: expected an integer tensor, got {type(groups).__name__}")
    if groups.is_floating_point() or groups.is_complex():
        raise ValueError(f"groups: expected an integer tensor of player ids, got {groups.dtype}")
    if groups.ndim > len(shape):
        raise ValueError(
            f"groups: a mask of shape {list(groups.shape)} has more dims than the inputs "
            f"{list(shape)}"
        )
    ids = groups.long().reshape((1,) * (len(shape) - groups.ndim) + tuple(groups.shape))
    for dim, (m, s) in enumerate(zip(ids.shape, shape, strict=True)):
        if m not in (1, s):
            raise ValueError(
                f"groups: a mask of shape {list(groups.shape)} does not broadcast to the inputs "
                f"{list(shape)} (dim {dim} has {m}, expected 1 or {s})"
            )
    if ids.numel() and int(ids.min()) < -1:
        raise ValueError(f"groups: ids must be >= 0 (or -1 for no player); got {int(ids.min())}")
    present = torch.unique(ids[ids >= 0])
    if present.numel() == 0:
        raise ValueError("groups: the mask holds no player (every id is -1)")
    count = int(present[-1]) + 1
    if present.numel() != count:
        missing = sorted(set(range(count)) - set(present.tolist()))
        shown = ", ".join(str(i) for i in present.tolist()[:8])
        raise ValueError(
            f"groups: player ids must run 0..P-1 without gaps; id {missing[0]} is missing "
            f"(ids present: {shown}{', ...' if present.numel() > 8 else ''})"
        )
    return Players(ids, count)


def every_feature(shape: tuple[int, ...]) -> Players:
    """One player per feature of inputs shaped ``shape`` ``[N, ...]``, shared by the samples.

    Examples
    --------
    >>> every_feature((5, 2, 2)).ids
    tensor([[[0, 1],
             [2, 3]]])
    """
    count = 1
    for s in shape[1:]:
        count *= s
    return Players(torch.arange(count).reshape(1, *shape[1:]), count)


def grid(shape: tuple[int, ...], rows: int, cols: int, window: Window | None = None) -> Players:
    """A ``rows`` x ``cols`` grid of rectangular players over the last two dims of ``shape``.

    Players span the other feature dims (an image's channels). With a ``window``
    ``(r0, r1, c0, c1)`` the grid covers the window only; features outside are no player.
    Bands are as even as the size allows (``floor(i * rows / height)``).

    Examples
    --------
    >>> grid((1, 3, 4, 4), 2, 2).ids[0, 0]
    tensor([[0, 0, 1, 1],
            [0, 0, 1, 1],
            [2, 2, 3, 3],
            [2, 2, 3, 3]])
    >>> grid((1, 4, 4), 1, 2, window=(1, 3, 0, 2)).ids[0]
    tensor([[-1, -1, -1, -1],
            [ 0,  1, -1, -1],
            [ 0,  1, -1, -1],
            [-1, -1, -1, -1]])
    """
    for name, value in (("rows", rows), ("cols", cols)):
        _positive(name, value)
    r0, r1, c0, c1 = _region(shape, window, "grid")
    if rows > r1 - r0 or cols > c1 - c0:
        raise ValueError(
            f"rows, cols: a {rows} x {cols} grid does not fit the {r1 - r0} x {c1 - c0} "
            f"{'window' if window else 'inputs'} (at most one player per position)"
        )
    row = torch.arange(r1 - r0) * rows // (r1 - r0)
    col = torch.arange(c1 - c0) * cols // (c1 - c0)
    return _place(shape, (r0, r1, c0, c1), row[:, None] * cols + col[None, :], rows * cols)


def patches(shape: tuple[int, ...], size: int, window: Window | None = None) -> Players:
    """Square players of ``size`` x ``size`` positions over the last two dims of ``shape``.

    Patches start at the region's top-left corner; the last row and column of patches may
    be smaller. Players span the other feature dims.

    Examples
    --------
    >>> patches((1, 1, 3, 3), 2).ids[0, 0]
    tensor([[0, 0, 1],
            [0, 0, 1],
            [2, 2, 3]])
    >>> patches((1, 1, 3, 3), 4)
    Traceback (most recent call last):
    ValueError: size: 4 x 4 patches are larger than the 3 x 3 inputs
    """
    _positive("size", size)
    r0, r1, c0, c1 = _region(shape, window, "patches")
    if size > r1 - r0 or size > c1 - c0:
        raise ValueError(
            f"size: {size} x {size} patches are larger than the {r1 - r0} x {c1 - c0} "
            f"{'window' if window else 'inputs'}"
        )
    per_row = -(-(c1 - c0) // size)
    ids = (torch.arange(r1 - r0)[:, None] // size) * per_row + torch.arange(c1 - c0) // size
    return _place(shape, (r0, r1, c0, c1), ids, per_row * -(-(r1 - r0) // size))


def default_players(shape: tuple[int, ...]) -> Players:
    """The default players: an 8 x 8 grid for images ``[N, C, H, W]``, else every feature.

    Smaller images get one player per position along a side shorter than 8.

    Examples
    --------
    >>> default_players((2, 3, 32, 32)).count, default_players((2, 6)).count
    (64, 6)
    """
    if len(shape) == 4:
        return grid(shape, min(8, shape[-2]), min(8, shape[-1]))
    return every_feature(shape)


def within(players: Players, window: Window, shape: tuple[int, ...]) -> Players:
    """Keep only the players inside ``window`` (last two dims), renumbered from 0.

    Features outside the window stop being players (id ``-1``); a player partly inside
    keeps its features inside. Raises ``ValueError`` naming ``window`` when no player is left.

    Examples
    --------
    >>> p = within(every_feature((1, 2, 3)), (0, 1, 1, 3), (1, 2, 3))
    >>> p.ids, p.count
    (tensor([[[-1,  0,  1],
             [-1, -1, -1]]]), 2)
    """
    r0, r1, c0, c1 = _region(shape, window, "window")
    ids = players.ids.expand(players.ids.shape[0], *shape[1:]).clone()
    inside = torch.zeros(shape[-2:], dtype=torch.bool, device=ids.device)
    inside[r0:r1, c0:c1] = True
    ids = torch.where(inside, ids, torch.full_like(ids, -1))
    present, compact = torch.unique(ids, return_inverse=True)
    if int((present >= 0).sum()) == 0:
        raise ValueError(f"window: {list(window)} holds no player")
    # unique sorts, so -1 (if present) takes slot 0 and the players follow in order.
    offset = int((present < 0).sum())
    return Players(compact - offset, present.numel() - offset)


def spread(values: torch.Tensor, players: Players, shape: tuple[int, ...]) -> torch.Tensor:
    """Per-player ``values`` ``[T, N, P]`` at input resolution ``[T, N, *shape[1:]]``.

    Each feature gets its player's value; features that are no player get 0.

    Examples
    --------
    >>> p = player_mask(torch.tensor([[1, 0, -1]]), (2, 3))
    >>> spread(torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), p, (2, 3))
    tensor([[[2., 1., 0.],
             [4., 3., 0.]]])
    """
    t, n = values.shape[0], values.shape[1]
    padded = torch.cat([values.new_zeros(t, n, 1), values], dim=2)
    index = (players.ids.to(values.device) + 1).expand(n, *shape[1:]).reshape(1, n, -1)
    return padded.gather(2, index.expand(t, n, -1)).reshape(t, n, *shape[1:])


def player_sums(values: torch.Tensor, players: Players) -> torch.Tensor:
    """Sum ``values`` ``[..., N, *features]`` over each player's features: ``[..., N, P]``.

    Features that are no player are left out.

    Examples
    --------
    >>> p = player_mask(torch.tensor([0, 1, 0, -1]), (1, 4))
    >>> player_sums(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), p)
    tensor([[4., 2.]])
    """
    lead = values.ndim - players.ids.ndim  # dims before the sample dim
    samples, features = values.shape[lead], tuple(values.shape[lead + 1 :])
    flat = values.reshape(-1, samples, _numel(features))
    index = (players.ids.to(values.device) + 1).expand(samples, *features).reshape(1, samples, -1)
    sums = flat.new_zeros(flat.shape[0], samples, players.count + 1)
    sums.scatter_add_(2, index.expand(flat.shape[0], -1, -1), flat)
    return sums[..., 1:].reshape(*values.shape[: lead + 1], players.count)


def _numel(shape: tuple[int, ...] | torch.Size) -> int:
    count = 1
    for s in shape:
        count *= s
    return count


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _region(shape: tuple[int, ...], window: Window | None, what: str) -> Window:
    if len(shape) < 3:
        raise ValueError(
            f"{'window' if window else what}: needs a spatial grid [N, ..., rows, columns], "
            f"but the inputs have shape {list(shape)}"
        )
    rows, cols = shape[-2], shape[-1]
    if window is None:
        return (0, rows, 0, cols)
    r0, r1, c0, c1 = (int(v) for v in window)
    if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
        raise ValueError(
            f"window: {list(window)} is not a non-empty [row0, row1, col0, col1] inside the "
            f"{rows} x {cols} grid, so it holds no player"
        )
    return (r0, r1, c0, c1)


def _place(shape: tuple[int, ...], region: Window, ids: torch.Tensor, count: int) -> Players:
    # Players span every feature dim before the grid's two.
    r0, r1, c0, c1 = region
    full = torch.full(shape[-2:], -1, dtype=torch.long)
    full[r0:r1, c0:c1] = ids
    return Players(full.reshape((1,) * (len(shape) - 2) + tuple(shape[-2:])), count)
