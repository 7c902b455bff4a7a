"""The user's model on packed rows (:mod:`~algebra.kernels.inputs`), and what passes do
to keep each row's sample index: pin it, and never add noise to it or to token ids.

:class:`PackedModule` is the module every pass runs: it unpacks its rows into the
forward's arguments and calls the user's module. It is transparent to everything else:
its ``named_modules()`` are the user's (layers keep their names, hooks go on the user's
submodules), its parameters are the user's, and it adds no state of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .inputs import Packing
from .noise import cpu_generator, value_range


class PackedModule(torch.nn.Module):
    """``module`` called on rows packed by ``packing``.

    Examples
    --------
    >>> from algebra.kernels.inputs import packing
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a + b
    >>> p = packing({"a": torch.ones(2, 3), "b": torch.ones(2, 3)}, ("a",), positional=("a", "b"))
    >>> packed = PackedModule(Two(), p)
    >>> packed(p.pack({"a": torch.zeros(2, 3)}, torch.float32)).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    >>> [name for name, _ in packed.named_modules()]
    ['']
    """

    def __init__(self, module: torch.nn.Module, packing: Packing):
        super().__init__()
        self.inner = module
        self.packing = packing

    def forward(self, rows: torch.Tensor) -> Any:
        """The user's module on the arguments ``rows`` unpack to.

        Examples
        --------
        >>> from algebra.kernels.inputs import packing
        >>> p = packing({"ids": torch.tensor([[1, 2]])}, positional=("ids",))
        >>> PackedModule(torch.nn.Embedding(4, 1), p)(torch.tensor([[1.0, 2.0, 0.0]])).shape
        torch.Size([1, 2, 1])
        """
        args, kwargs = self.packing.unpack(rows)
        return self.inner(*args, **kwargs)

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, torch.nn.Module]]:
        """The user's module's own names (layers are selected as in its ``named_modules()``).

        Examples
        --------
        >>> from algebra.kernels.inputs import packing
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
        >>> p = packing({"x": torch.ones(1, 2)})
        >>> [n for n, _ in PackedModule(net, p).named_modules()]
        ['', '0']
        """
        return self.inner.named_modules(memo, prefix, remove_duplicate)


def packing_of(module: Any) -> Packing | None:
    """The packing of a :class:`PackedModule`, else ``None`` (a plain model on one tensor).

    Examples
    --------
    >>> packing_of(torch.nn.Linear(2, 2)) is None
    True
    """
    return module.packing if isinstance(module, PackedModule) else None


def pin(points: torch.Tensor, ends: torch.Tensor, module: Any) -> torch.Tensor:
    """``points`` with each row's sample index copied from ``ends`` (its sample's rows,
    broadcastable): references drawn from a set carry no sample of their own.

    Examples
    --------
    >>> from algebra.kernels.inputs import packing
    >>> packed = PackedModule(torch.nn.Identity(), packing({"x": torch.ones(2, 1)}))
    >>> pin(torch.zeros(2, 2), torch.tensor([[5.0, 0.0], [5.0, 1.0]]), packed).tolist()
    [[0.0, 0.0], [0.0, 1.0]]
    """
    packing = packing_of(module)
    if packing is None:
        return points
    out = points.clone()
    i = packing.index
    out[..., i] = ends[..., i].expand_as(out[..., i])
    return out


def masked_noise(noise: torch.Tensor, module: Any) -> torch.Tensor:
    """``noise`` (``[..., width]``) zero where the rows must not move: token ids and the
    sample index.

    Examples
    --------
    >>> from algebra.kernels.inputs import packing
    >>> packed = PackedModule(torch.nn.Identity(), packing({"x": torch.ones(2, 2)}))
    >>> masked_noise(torch.ones(3, 2, 3), packed)[0, 0].tolist()
    [1.0, 1.0, 0.0]
    """
    packing = packing_of(module)
    if packing is None:
        return noise
    return noise * packing.float_columns(noise.device).to(noise.dtype)


def packed_noise(
    module: Any,
    x: torch.Tensor,
    samples: int,
    stdev: float,
    relative: bool = True,
    seed: int | None = None,
) -> torch.Tensor:
    """Gaussian noise ``[S, N, width]`` for packed rows: ``stdev`` times the value range of
    each sample's input (each input its own range) when ``relative``, else ``stdev``;
    zero on token ids and the sample index. Drawn as :func:`~algebra.kernels.noise.draw_noise`
    draws (on the CPU, from ``seed``).

    Examples
    --------
    >>> from algebra.kernels.inputs import packing
    >>> p = packing({"a": torch.ones(1, 2), "b": torch.ones(1, 2)})
    >>> x = torch.tensor([[0.0, 1.0, 0.0, 10.0, 0.0]])
    >>> noise = packed_noise(PackedModule(torch.nn.Identity(), p), x, 4000, 0.1, seed=0)
    >>> [round(float(s), 1) for s in noise[:, 0].std(0)]
    [0.1, 0.1, 1.0, 1.0, 0.0]
    """
    packing = packing_of(module)
    assert packing is not None
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    unit = torch.randn((samples, *x.shape), generator=cpu_generator(seed), dtype=dtype)
    unit = unit.to(device=x.device, dtype=x.dtype)
    scale = torch.zeros_like(x)
    for slot in packing.slots:
        if slot.integer:
            continue
        part = x[:, slot.start : slot.stop]
        scale[:, slot.start : slot.stop] = stdev * value_range(part) if relative else stdev
    return unit * scale
