"""``Model.on`` with several inputs, token ids or extra forward arguments.

The inputs are checked against the forward's signature and against each other when the
query is built, then packed into one tensor of rows (``kernels/inputs.py``): the
attributed inputs side by side, then each row's sample index. The query's model is the
user's module called on those rows (a ``PackedModule``), and it carries the inputs'
layout (:class:`~algebra.ir.inputs.InputLayout`) for the rest of the engine.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..errors import did_you_mean
from ..ir.inputs import InputLayout, InputSlot
from ..ir.model import ModelInfo
from ..ir.node import Ref
from ..ir.views import RESERVED_DIMS, default_dims
from ..kernels.checks import fingerprint, model_dtype, ordinary
from ..kernels.inputs import Packing, check_exact, packing
from ..kernels.packed import PackedModule
from .signature import check_keyword, check_required, forward_signature, positional_names
from .signature import forward_kwargs as checked_kwargs


def several(inputs: Any, attribute: Any, forward_kwargs: Any, tokens: Any) -> bool:
    """Whether ``Model.on``'s arguments need packing: several inputs (a tuple, a list of
    tensors or a dict), token ids (an integer tensor), ``forward_kwargs``, ``attribute`` or
    ``tokens``.

    Examples
    --------
    >>> several(torch.rand(2, 3), None, None, None), several(torch.tensor([[1, 2]]), None, None, None)
    (False, True)
    >>> several({"x": torch.rand(2, 3)}, None, None, None)
    True
    """
    if attribute is not None or forward_kwargs is not None or tokens is not None:
        return True
    if isinstance(inputs, (tuple, Mapping)):
        return True
    if isinstance(inputs, list) and inputs:
        return all(isinstance(t, (torch.Tensor, np.ndarray)) for t in inputs)
    if isinstance(inputs, torch.Tensor):
        return not (inputs.is_floating_point() or inputs.is_complex())
    return isinstance(inputs, np.ndarray) and inputs.dtype.kind in ("i", "u", "b")


def packed_model(
    info: ModelInfo,
    inputs: Any,
    *,
    attribute: Any = None,
    forward_kwargs: Mapping[str, Any] | None = None,
    dims: Any = None,
    tokens: Any = None,
) -> tuple[ModelInfo, torch.Tensor]:
    """The model on packed rows of ``inputs`` (its info carries their layout), and the rows.

    Examples
    --------
    >>> class Two(torch.nn.Module):
    ...     def forward(self, x, mask):
    ...         return (x * mask).sum(-1, keepdim=True)
    >>> import algebra as ia
    >>> info = ia.model(Two().eval()).info
    >>> packed, rows = packed_model(info, {"x": torch.ones(2, 3), "mask": torch.ones(2, 3)},
    ...                             attribute="x")
    >>> packed.inputs.names, packed.inputs.passed, tuple(rows.shape)
    (('x',), ('mask',), (2, 4))
    >>> packed_model(info, {"x": torch.ones(2, 3), "mask": torch.ones(3, 3)})
    Traceback (most recent call last):
    ValueError: inputs: 'mask' has 3 samples (its first dim), but 'x' has 2; every input needs the same number of samples N
    """
    module = info.torch_module
    dtype = model_dtype(module) or torch.get_default_dtype()
    signature = forward_signature(module)
    kind, values = _named(inputs, signature, dtype)
    _samples(values)
    kwargs = checked_kwargs(forward_kwargs, values, signature)
    check_required(signature, {**values, **kwargs}, kind)
    chosen = _attributed(attribute, values)
    positional = tuple(values) if kind != "dict" else ()
    pack = packing({**values, **kwargs}, chosen, positional)
    layout = _layout(kind, pack, values, kwargs, dims, tokens, module)
    rows = pack.pack(values, dtype)
    adapter = PackedModule(module, pack)
    packed = replace(info, module=Ref(adapter, f"{info.token}|{layout.token}"), inputs=layout)
    return packed, rows


def _named(
    inputs: Any, signature: inspect.Signature | None, dtype: torch.dtype
) -> tuple[str, dict[str, torch.Tensor]]:
    """The inputs by name (the forward's parameter names), checked, and their kind."""
    if isinstance(inputs, Mapping):
        values = {}
        for key, value in inputs.items():
            if not isinstance(key, str):
                raise TypeError(f"inputs: dict keys name the forward's arguments; got {key!r}")
            check_keyword(key, signature, "inputs")
            values[key] = _tensor(value, f"inputs[{key!r}]", dtype)
        if not values:
            raise ValueError("inputs: the dict holds no input")
        return "dict", values
    many = isinstance(inputs, (tuple, list))
    given = list(inputs) if many else [inputs]
    if not given:
        raise ValueError("inputs: the tuple holds no input")
    names = positional_names(signature, len(given))
    kind = "tuple" if many else "single"
    shown = (lambda i: f"inputs[{i}]") if many else (lambda i: "inputs")
    return kind, {
        name: _tensor(v, shown(i), dtype)
        for i, (name, v) in enumerate(zip(names, given, strict=True))
    }


def _tensor(value: Any, argument: str, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        floating = value.dtype.kind == "f"
        value = torch.tensor(value, dtype=dtype) if floating else torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{argument}: expected a torch.Tensor of shape [N, ...]; got {type(value).__name__}"
        )
    if value.ndim < 1 or value.shape[0] == 0:
        raise ValueError(
            f"{argument}: expected a batch [N, ...] with N >= 1; got {list(value.shape)}"
        )
    if value.device.type == "meta":
        raise ValueError(f"{argument}: the tensor is on the meta device, which holds no values")
    if value.is_complex():
        raise TypeError(f"{argument}: complex inputs are not supported; got {value.dtype}")
    if value.is_floating_point():
        if value.dtype != dtype:
            raise TypeError(
                f"{argument}: dtype {value.dtype} does not match the model's {dtype}; "
                f"convert with .to({dtype})"
            )
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise ValueError(
                f"{argument}: {bad} value(s) are NaN or infinite; inputs must be finite"
            )
    return ordinary(value)


def _samples(values: dict[str, torch.Tensor]) -> int:
    first, n = next(iter(values.items()))[0], next(iter(values.values())).shape[0]
    for name, value in values.items():
        if value.shape[0] != n:
            raise ValueError(
                f"inputs: {name!r} has {value.shape[0]} samples (its first dim), but {first!r} "
                f"has {n}; every input needs the same number of samples N"
            )
    return n


def _attributed(attribute: Any, values: dict[str, torch.Tensor]) -> tuple[str, ...]:
    names = list(values)
    if attribute is None:  # every floating-point input; with none, the first input
        floating = tuple(k for k, v in values.items() if v.is_floating_point())
        return floating or (names[0],)
    chosen = (attribute,) if isinstance(attribute, (str, int)) else tuple(attribute)
    if not chosen:
        raise ValueError("attribute: expected at least one input to attribute")
    out = []
    for item in chosen:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TypeError(f"attribute: expected input names (or positions); got {item!r}")
        if isinstance(item, int):
            if not -len(names) <= item < len(names):
                raise ValueError(
                    f"attribute: position {item} is out of range for {len(names)} inputs"
                )
            item = names[item]
        if item not in values:
            raise ValueError(
                f"attribute: {item!r} is not one of the inputs "
                f"({', '.join(map(repr, names))})." + did_you_mean(item, names)
            )
        out.append(item)
    if len(set(out)) != len(out):
        raise ValueError(f"attribute: an input is named more than once: {out}")
    return tuple(name for name in names if name in out)  # in the inputs' order


def _layout(
    kind: str,
    pack: Packing,
    values: dict[str, torch.Tensor],
    kwargs: dict[str, Any],
    dims: Any,
    tokens: Any,
    module: torch.nn.Module,
) -> InputLayout:
    given = _dims_given(kind, dims, list(values))
    slots = []
    for slot in pack.slots:
        names = given.get(slot.name)
        if names is None:
            names = ("token",) if slot.integer and len(slot.shape) == 1 else None
            names = names or default_dims(len(slot.shape) + 1)
        _check_dims(names, slot.shape, slot.name)
        slots.append(InputSlot(slot.name, slot.shape, names, slot.start, slot.stop, slot.integer))
    attributed = {s.name for s in pack.slots}
    passed = tuple(k for k in values if k not in attributed)
    embeddings = tuple(n for n, m in module.named_modules() if isinstance(m, torch.nn.Embedding))
    text = _tokens(tokens, pack, values)
    key = _key(kind, pack, values, kwargs, slots, text)
    carried = bool(pack.carried)
    return InputLayout(kind, tuple(slots), passed, tuple(kwargs), carried, text, embeddings, key)


def _dims_given(kind: str, dims: Any, names: list[str]) -> dict[str, tuple[str, ...]]:
    if dims is None:
        return {}
    if kind == "single":
        return {names[0]: _dim_names(dims, "dims")}
    if kind == "dict":
        if not isinstance(dims, Mapping):
            raise TypeError(
                "dims: for a dict of inputs, expected a dict of input name -> dim names"
            )
        for key in dims:
            if key not in names:
                raise ValueError(f"dims: {key!r} is not an input." + did_you_mean(str(key), names))
        return {k: _dim_names(v, f"dims[{k!r}]") for k, v in dims.items() if v is not None}
    if isinstance(dims, (str, bytes)) or len(dims) != len(names):
        raise ValueError(
            f"dims: for {len(names)} inputs, expected {len(names)} tuples of dim names"
        )
    return {
        k: _dim_names(v, f"dims[{i}]")
        for i, (k, v) in enumerate(zip(names, dims, strict=True))
        if v is not None
    }


def _dim_names(value: Any, argument: str) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(d, str) for d in value):
        raise TypeError(f"{argument}: expected a sequence of names (str); got {value!r}")
    return tuple(value)


def _check_dims(names: tuple[str, ...], shape: tuple[int, ...], name: str) -> None:
    if len(names) != len(shape):
        raise ValueError(
            f"dims: input {name!r} has per-sample shape {list(shape)}, which needs "
            f"{len(shape)} dim names; got {list(names)}"
        )
    if len(set(names)) != len(names) or set(names) & set(RESERVED_DIMS):
        raise ValueError(
            f"dims: names must be unique and not 'sample' or 'target'; got {list(names)}"
        )


def _tokens(
    tokens: Any, pack: Packing, values: dict[str, torch.Tensor]
) -> tuple[tuple[str, ...], ...] | None:
    if tokens is None:
        return None
    ids = [s for s in pack.slots if s.integer and len(s.shape) == 1]
    if len(ids) != 1:
        raise ValueError(
            "tokens: the text of tokens labels one attributed input of token ids [N, L]; "
            f"the attributed inputs are {', '.join(repr(s.name) for s in pack.slots)}"
        )
    slot = ids[0]
    if isinstance(tokens, (str, bytes)) or len(tokens) != pack.n:
        raise ValueError(f"tokens: expected {pack.n} lists of token strings, one per sample")
    out = []
    for i, row in enumerate(tokens):
        row = list(row) if not isinstance(row, str) else None
        if row is None or len(row) != slot.shape[0] or not all(isinstance(t, str) for t in row):
            raise ValueError(
                f"tokens: sample {i} needs {slot.shape[0]} strings, one per token of {slot.name!r}"
            )
        out.append(tuple(row))
    return tuple(out)


def _key(
    kind: str,
    pack: Packing,
    values: dict[str, torch.Tensor],
    kwargs: dict[str, Any],
    slots: list[InputSlot],
    text: Any,
) -> str:
    parts = [kind, repr([(s.name, s.dims) for s in slots]), repr(pack.positional)]
    parts += [f"{k}={fingerprint(v)}" for k, v in values.items()]
    for k, v in kwargs.items():
        shown = fingerprint(v) if isinstance(v, torch.Tensor) else _constant(v)
        parts.append(f"{k}={shown}")
    parts.append("" if text is None else hashlib.sha1(repr(text).encode()).hexdigest())
    return "|".join(parts)


def _constant(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    return f"{type(value).__name__}@{id(value)}"


def check_token_ids(value: torch.Tensor, dtype: torch.dtype, argument: str) -> torch.Tensor:
    """Token ids as a baseline holds them: integers the model's dtype holds exactly.

    Examples
    --------
    >>> check_token_ids(torch.tensor([0, 1]), torch.float32, "baseline").tolist()
    [0, 1]
    >>> check_token_ids(torch.tensor([0.5]), torch.float32, "baseline")
    Traceback (most recent call last):
    TypeError: baseline: token ids must be integers; got torch.float32
    """
    if value.is_floating_point() or value.is_complex():
        raise TypeError(f"{argument}: token ids must be integers; got {value.dtype}")
    check_exact(value, dtype, argument)
    return value
