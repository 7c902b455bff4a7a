"""The forward's signature, which several inputs and extra forward arguments are checked
against when a query is built: the names of positional inputs, the keyword arguments it
takes (with close matches), and the ones it cannot do without."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import did_you_mean
from ..kernels.checks import ordinary

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def forward_signature(module: torch.nn.Module) -> inspect.Signature | None:
    """The signature of ``module.forward``, or ``None`` when Python cannot read it.

    Examples
    --------
    >>> str(forward_signature(torch.nn.Linear(2, 2)))
    '(input: torch.Tensor) -> torch.Tensor'
    """
    try:
        return inspect.signature(module.forward)
    except (TypeError, ValueError):  # a builtin or scripted forward: nothing to check against
        return None


def positional_names(signature: inspect.Signature | None, count: int) -> list[str]:
    """The names of ``count`` inputs passed by position: the forward's parameter names
    (``input_i`` beyond them, under ``*args``).

    Examples
    --------
    >>> def forward(a, b, *rest): ...
    >>> positional_names(inspect.signature(forward), 3)
    ['a', 'b', 'input_2']
    >>> positional_names(inspect.signature(lambda a: a), 2)
    Traceback (most recent call last):
    ValueError: inputs: forward(a) takes 1 positional input; got 2
    """
    if signature is None:
        return [f"input_{i}" for i in range(count)] if count > 1 else ["input"]
    params = list(signature.parameters.values())
    named = [p.name for p in params if p.kind in _POSITIONAL]
    varargs = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)
    if count > len(named) and not varargs:
        raise ValueError(
            f"inputs: forward{signature} takes {len(named)} positional input"
            f"{'s' if len(named) != 1 else ''}; got {count}"
        )
    return named[:count] + [f"input_{i}" for i in range(len(named), count)]


def check_keyword(name: str, signature: inspect.Signature | None, argument: str) -> None:
    """Refuse ``name`` when the forward takes no such keyword argument (close matches).

    Examples
    --------
    >>> def forward(input_ids, attention_mask=None): ...
    >>> check_keyword("attention_mask", inspect.signature(forward), "inputs")
    >>> check_keyword("input_id", inspect.signature(forward), "inputs")
    Traceback (most recent call last):
    ValueError: inputs: 'input_id' is not an argument of forward(input_ids, attention_mask=None). Did you mean 'input_ids'?
    """
    if signature is None:
        return
    params = list(signature.parameters.values())
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        return
    names = [p.name for p in params if p.kind in _KEYWORD]
    if name not in names:
        raise ValueError(
            f"{argument}: {name!r} is not an argument of forward{signature}."
            + did_you_mean(name, names)
        )


def forward_kwargs(
    given: Mapping[str, Any] | None,
    inputs: Mapping[str, Any],
    signature: inspect.Signature | None,
) -> dict[str, Any]:
    """``forward_kwargs`` checked: a dict of the forward's keyword arguments, none of them
    already an input.

    Examples
    --------
    >>> def forward(x, mask=None, scale=1.0): ...
    >>> sorted(forward_kwargs({"mask": torch.ones(2)}, {"x": None}, inspect.signature(forward)))
    ['mask']
    >>> forward_kwargs({"x": 1}, {"x": None}, inspect.signature(forward))
    Traceback (most recent call last):
    ValueError: forward_kwargs: 'x' is already given as an input
    """
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise TypeError(
            "forward_kwargs: expected a dict of the forward's keyword arguments; got "
            f"{type(given).__name__}"
        )
    out = {}
    for key, value in given.items():
        if not isinstance(key, str):
            raise TypeError(f"forward_kwargs: keys name the forward's arguments; got {key!r}")
        if key in inputs:
            raise ValueError(f"forward_kwargs: {key!r} is already given as an input")
        check_keyword(key, signature, "forward_kwargs")
        out[key] = ordinary(value) if isinstance(value, torch.Tensor) else value
    return out


def check_required(
    signature: inspect.Signature | None, given: Mapping[str, Any], kind: str
) -> None:
    """Refuse a call that leaves out an argument the forward cannot do without.

    Examples
    --------
    >>> def forward(x, mask): ...
    >>> check_required(inspect.signature(forward), {"x": 1}, "dict")
    Traceback (most recent call last):
    ValueError: inputs: forward(x, mask) needs 'mask'; given: 'x'
    """
    if signature is None:
        return
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.kind in _KEYWORD and p.default is inspect.Parameter.empty and p.name not in given
    ]
    if missing:
        where = "inputs" if kind == "dict" else "forward_kwargs"
        raise ValueError(
            f"{where}: forward{signature} needs {', '.join(map(repr, missing))}; "
            f"given: {', '.join(map(repr, given))}"
        )
