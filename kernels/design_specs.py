"""The perturbation family's designs in plain data (no torch): whose features are the
players, and how the copies that switch them on and off are drawn.

A :class:`~algebra.kernels.plan.Perturbation` carries a :class:`DesignSpec`; the kernels
lay its players on the perturbed tensor's shape and draw its coalitions
(``kernels/run_copies.py``). Each spec has a ``key``: equal keys draw the same copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class PlayerSpec:
    """The players of a perturbation, in plain data; the kernels lay them on the perturbed
    tensor's shape (``kernels/run_copies.py``).

    ``kind`` is ``"default"`` (an 8 x 8 grid over 4-D tensors, every feature otherwise),
    ``"grid"`` (``args`` rows, cols), ``"patches"`` (``args`` the size) or ``"mask"`` (the
    integer tensor ``mask``, identified by ``mask_key``). With a ``window`` the players lie
    inside it only.

    Examples
    --------
    >>> PlayerSpec("grid", (4, 4), window=(0, 8, 0, 8)).key
    'grid(4, 4)|window(0, 8, 0, 8)'
    """

    kind: Literal["default", "grid", "patches", "mask"]
    args: tuple[int, ...] = ()
    mask: Any = None
    mask_key: str = ""
    window: tuple[int, int, int, int] | None = None

    @property
    def key(self) -> str:
        """Equal for specs that give the same players."""
        if self.kind == "mask":
            what = f"mask:{self.mask_key}"
        else:
            what = f"{self.kind}({', '.join(map(str, self.args))})"
        return f"{what}|window{self.window}"


@dataclass(frozen=True)
class DesignSpec:
    """One perturbation method's copies: the method, its players and its parameters.

    ``samples`` (permutations, drawn coalitions, or ``"exact"``), ``seed`` (``None``: drawn
    from torch's global generator when the design is built), ``antithetic``,
    ``kernel_width`` (LIME), ``size`` and ``stride`` (occlusion's sliding window).

    Examples
    --------
    >>> a = DesignSpec("shapley", PlayerSpec("default"), samples=4, seed=0)
    >>> a.key == DesignSpec("shapley", PlayerSpec("default"), samples=4, seed=0).key
    True
    """

    method: str
    players: PlayerSpec
    samples: int | str | None = None
    seed: int | None = None
    antithetic: bool = False
    kernel_width: float | None = None
    size: int | tuple[int, ...] | None = None
    stride: int | tuple[int, ...] | None = None

    @property
    def key(self) -> str:
        """Equal for designs that draw the same coalitions."""
        return (
            f"{self.method}|{self.players.key}|{self.samples}|{self.seed}|{self.antithetic}|"
            f"{self.kernel_width}|{self.size}|{self.stride}"
        )
