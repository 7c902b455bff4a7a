"""Several inputs, token ids and extra forward arguments, packed into one tensor of rows.

Every pass of the kernels evaluates a model at rows of one floating-point tensor: the
inputs, a path's points, noisy or perturbed copies, references. A model called with
several inputs, integer token ids or extra forward arguments is evaluated through a
:class:`~algebra.kernels.packed.PackedModule` on rows laid out by a :class:`Packing`:
the attributed inputs flattened side by side (token ids as exact floating-point values),
then the index of the sample the row belongs to. The inputs that are not attributed and
the forward arguments with a leading ``N`` dim are *carried*: the module looks them up at
each row's sample, so they follow the samples through paths, copies and chunks; other
forward arguments are passed as they are.

The index survives every pass: paths ``start + a (end - start)``, copies that keep what
is not a player and references built from the sample's own row leave a column unchanged
where the row and its reference agree, and references are built per sample with the
sample's index (:meth:`Packing.rows`); noise is zero there and passes that draw their
references from a set pin it back (:func:`~algebra.kernels.packed.pin`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

# The largest integer every integer up to which a floating dtype holds exactly.
_EXACT = {torch.float16: 2**11, torch.bfloat16: 2**8, torch.float32: 2**24, torch.float64: 2**53}


@dataclass(frozen=True)
class Slot:
    """One attributed input in the packed rows: columns ``start:stop``, per-sample
    ``shape``, and its own ``dtype`` (an integer dtype for token ids).

    Examples
    --------
    >>> Slot("x", (2, 3), torch.float32, 0, 6).integer
    False
    """

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    start: int
    stop: int

    @property
    def integer(self) -> bool:
        """Whether the input holds integers (token ids), rounded back when unpacked."""
        return not (self.dtype.is_floating_point or self.dtype.is_complex)


@dataclass
class Packing:
    """How a model is called on packed rows: the attributed inputs' slots, the index
    column after them, the carried per-sample tensors and the constant arguments.

    ``positional`` names what goes to the forward by position, ``keywords`` what goes by
    keyword; each name is a slot, a carried tensor or a constant.

    Examples
    --------
    >>> p = packing({"x": torch.ones(2, 3), "m": torch.tensor([[1, 0], [1, 1]])},
    ...             attributed=("x",), keywords=("x", "m"))
    >>> rows = p.pack({"x": torch.ones(2, 3)}, torch.float32)
    >>> rows.tolist()
    [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
    >>> args, kwargs = p.unpack(rows[[1, 1, 0]])
    >>> kwargs["m"].tolist()
    [[1, 1], [1, 1], [1, 0]]
    """

    slots: tuple[Slot, ...]
    n: int
    positional: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    carried: dict[str, torch.Tensor] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    _moved: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def index(self) -> int:
        """The column holding each row's sample index (the last one)."""
        return self.slots[-1].stop if self.slots else 0

    @property
    def width(self) -> int:
        """Columns per row."""
        return self.index + 1

    def slot(self, name: str) -> Slot:
        """The slot of the attributed input ``name``.

        Examples
        --------
        >>> packing({"a": torch.ones(2, 2), "b": torch.ones(2, 3)}).slot("b").start
        2
        """
        return next(s for s in self.slots if s.name == name)

    def pack(self, values: Mapping[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        """The rows of the inputs themselves: ``[N, width]`` in ``dtype``.

        Examples
        --------
        >>> p = packing({"ids": torch.tensor([[5, 7]])})
        >>> p.pack({"ids": torch.tensor([[5, 7]])}, torch.float64).tolist()
        [[5.0, 7.0, 0.0]]
        """
        return self.rows({s.name: values[s.name] for s in self.slots}, dtype, self.n)

    def rows(
        self,
        values: Mapping[str, Any],
        dtype: torch.dtype,
        count: int,
        per_sample: bool = True,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``count`` rows made of each slot's value (a number, or a tensor broadcastable to
        ``[count, *shape]``): each sample's references when ``per_sample`` (the index
        column ``0..N-1``), else a set of references whose index is pinned by the passes.

        Examples
        --------
        >>> p = packing({"a": torch.ones(2, 2), "b": torch.ones(2, 1)})
        >>> p.rows({"a": 0.5, "b": torch.tensor([[1.0], [2.0]])}, torch.float32, 2).tolist()
        [[0.5, 0.5, 1.0, 0.0], [0.5, 0.5, 2.0, 1.0]]
        """
        parts = []
        for slot in self.slots:
            value = values[slot.name]
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(float(value), dtype=torch.float64)
            value = value.to(device=device) if device is not None else value
            if slot.integer:
                check_exact(value, dtype, slot.name)
            flat = value.to(dtype).expand(count, *slot.shape).reshape(count, -1)
            parts.append(flat)
        where = parts[0].device if parts else device
        if per_sample:
            check_indexable(count, dtype)
        index = torch.arange(count, dtype=dtype, device=where) if per_sample else None
        if index is None:
            index = torch.zeros(count, dtype=dtype, device=where)
        return torch.cat([*parts, index[:, None]], dim=1)

    def unpack(self, rows: torch.Tensor) -> tuple[list[Any], dict[str, Any]]:
        """The forward's arguments for ``rows`` ``[R, width]``: the slots unflattened
        (token ids rounded back to their dtype, without gradient), the carried tensors at
        each row's sample, the constants as given.

        Examples
        --------
        >>> p = packing({"ids": torch.tensor([[3, 4], [5, 6]])}, positional=("ids",))
        >>> args, _ = p.unpack(torch.tensor([[5.0, 6.0, 1.0]]))
        >>> args[0], args[0].dtype
        (tensor([[5, 6]]), torch.int64)
        """
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(
                f"inputs: expected packed rows [R, {self.width}]; got {list(rows.shape)}"
            )
        samples = rows[:, self.index].detach().round().long()
        values: dict[str, Any] = dict(self.constants)
        for slot in self.slots:
            part = rows[:, slot.start : slot.stop].reshape(len(rows), *slot.shape)
            values[slot.name] = part.detach().round().to(slot.dtype) if slot.integer else part
        for name in self.carried:
            tensor = self._on(name, samples.device)
            values[name] = tensor[samples]
        return [values[n] for n in self.positional], {k: values[k] for k in self.keywords}

    def _on(self, name: str, device: torch.device) -> torch.Tensor:
        # Carried tensors move to the rows' device once, not at every forward.
        key = (name, str(device))
        if key not in self._moved:
            self._moved[key] = self.carried[name].to(device)
        return self._moved[key]

    def float_columns(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """A ``[width]`` mask of the columns that may move: the floating inputs' (not the
        token ids, not the index).

        Examples
        --------
        >>> p = packing({"x": torch.ones(2, 2), "ids": torch.ones(2, 1, dtype=torch.long)})
        >>> p.float_columns().tolist()
        [True, True, False, False]
        """
        mask = torch.zeros(self.width, dtype=torch.bool, device=device)
        for slot in self.slots:
            if not slot.integer:
                mask[slot.start : slot.stop] = True
        return mask


def packing(
    values: Mapping[str, Any],
    attributed: tuple[str, ...] | None = None,
    positional: tuple[str, ...] = (),
    keywords: tuple[str, ...] | None = None,
) -> Packing:
    """The packing of ``values`` (name -> tensor ``[N, ...]`` or constant): the
    ``attributed`` names get slots (default: every tensor), the other tensors with the
    samples' leading dim are carried, the rest are constants. Names not ``positional``
    go by keyword (default: all of them).

    Examples
    --------
    >>> p = packing({"x": torch.ones(4, 2, 2), "m": torch.ones(4, 5), "k": 3}, ("x",))
    >>> [(s.name, s.start, s.stop) for s in p.slots], sorted(p.carried), p.constants, p.width
    ([('x', 0, 4)], ['m'], {'k': 3}, 5)
    """
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor) and v.ndim >= 1}
    n = next(iter(tensors.values())).shape[0] if tensors else 0
    names = tuple(tensors) if attributed is None else attributed
    slots, start = [], 0
    for name in names:
        tensor = tensors[name]
        width = tensor[0].numel()
        slots.append(Slot(name, tuple(tensor.shape[1:]), tensor.dtype, start, start + width))
        start += width
    carried, constants = {}, {}
    for name, value in values.items():
        if name in names:
            continue
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == n:
            carried[name] = value
        else:
            constants[name] = value
    if keywords is None:
        keywords = tuple(k for k in values if k not in positional)
    return Packing(tuple(slots), n, tuple(positional), tuple(keywords), carried, constants)


def check_exact(values: torch.Tensor, dtype: torch.dtype, name: str) -> None:
    """Refuse integers that ``dtype`` (the model's) cannot hold exactly.

    Examples
    --------
    >>> check_exact(torch.tensor([30_000]), torch.float32, "ids")
    >>> check_exact(torch.tensor([30_000]), torch.float16, "ids")
    Traceback (most recent call last):
    ValueError: ids: token id 30000 cannot be held exactly in the model's torch.float16 (integers up to 2048 can); a model in float64 holds ids up to 2**53
    """
    limit = _EXACT.get(dtype)
    if limit is None or not values.numel():
        return
    largest = int(values.abs().max())
    if largest > limit:
        raise ValueError(
            f"{name}: token id {largest} cannot be held exactly in the model's {dtype} "
            f"(integers up to {limit} can); a model in float64 holds ids up to 2**53"
        )


def check_indexable(count: int, dtype: torch.dtype) -> None:
    """Refuse more samples than the index column can number exactly in ``dtype`` (the
    model's): rows would look up another sample's inputs and forward arguments.

    Examples
    --------
    >>> check_indexable(2050, torch.float32)
    >>> check_indexable(2050, torch.float16)
    Traceback (most recent call last):
    ValueError: inputs: 2050 samples cannot be numbered exactly in the model's torch.float16 (at most 2049 samples: indices up to 2048); pass fewer samples per query, or use the model in float32
    """
    limit = _EXACT.get(dtype)
    if limit is not None and count - 1 > limit:
        raise ValueError(
            f"inputs: {count} samples cannot be numbered exactly in the model's {dtype} "
            f"(at most {limit + 1} samples: indices up to {limit}); pass fewer samples per "
            "query, or use the model in float32"
        )
