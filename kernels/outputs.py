"""The scores a model's forward gives the engine: ``[N, classes]``, whatever it returns.

A forward may return a tensor, a Hugging Face ``ModelOutput``, a dict, a tuple or a
namedtuple; the scores may be ``[N]`` (one score per sample), ``[N, C]`` or a sequence
``[N, L, V]`` (a language model's logits). An :class:`OutputSpec` says how to read them:
``select`` picks the tensor (an attribute or key name, a tuple index, a callable; by
default the tensor itself or a ``logits`` field), ``position`` reads one position of a
sequence, and ``flatten`` reads every (position, class) pair of a sequence as one class
``position * V + class`` (targets that name a position, :mod:`.sequence_targets`).

:func:`selecting` applies a spec to every forward of a module inside a block, through a
forward hook on the module itself (removed on exit), so every pass of the engine, and the
gradient-free passes of the perturbation methods, see the same ``[N, C]`` scores. The
shape of the scores is probed when a query is built (:func:`~algebra.kernels.probes.output_shape`).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .capture import hookable, own_hooks, tagged


@dataclass(frozen=True)
class OutputSpec:
    """How the scores are read from what a forward returns.

    ``select``: ``None`` (a tensor as it is, else a ``logits`` field or key), a name (an
    attribute or key), an int (an element of a tuple) or a callable mapping the forward's
    return value to a tensor. ``position``: the position read from sequence scores
    ``[N, L, V]`` (negative counts from the end). ``flatten``: sequence scores read as
    ``[N, L * V]``. ``key`` identifies the spec in tokens.

    Examples
    --------
    >>> OutputSpec("logits", -1).key
    "output='logits'|position=-1"
    """

    select: Any = None
    position: int | None = None
    flatten: bool = False

    @property
    def key(self) -> str:
        """Equal for specs that read the same scores (a callable by identity)."""
        select = self.select
        if callable(select):
            select = f"fn:{id(select)}:{getattr(select, '__qualname__', type(select).__name__)}"
        return f"output={select!r}|position={self.position}"

    @property
    def default(self) -> bool:
        """Whether the spec is the default one (a tensor as is, else its ``logits``)."""
        return self.select is None and self.position is None


def _fields(out: Any) -> list[str]:
    """The names one may select from ``out`` (keys, namedtuple fields, attributes)."""
    if isinstance(out, Mapping):
        return [str(k) for k in out]
    if hasattr(out, "_fields"):
        return list(out._fields)
    return [k for k in vars(out) if not k.startswith("_")] if hasattr(out, "__dict__") else []


def describe(out: Any) -> str:
    """What a forward returned, in a few words.

    Examples
    --------
    >>> describe(torch.zeros(2, 3)), describe((torch.zeros(1), 3)), describe({"a": 1})
    ('a tensor of shape [2, 3]', 'a tuple of 2 elements', "a dict with keys 'a'")
    """
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {list(out.shape)}"
    name = type(out).__name__
    if isinstance(out, Mapping):
        keys = ", ".join(repr(k) for k in list(out.keys())[:8])
        return f"a {name} {'with keys ' + keys if keys else '(empty)'}"
    if isinstance(out, (tuple, list)):
        return f"a {name} of {len(out)} elements"
    return f"a {name}"


def _logits(out: Any) -> torch.Tensor | None:
    value = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    return value if isinstance(value, torch.Tensor) else None


def _by_name(out: Any, name: str) -> Any:
    if isinstance(out, Mapping) and name in out:
        return out[name]
    if not isinstance(out, (torch.Tensor, Mapping)) and name in _fields(out):
        return getattr(out, name)
    close = difflib.get_close_matches(name, _fields(out), n=2)
    hint = (" Did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
    raise ValueError(
        f"output: the model's forward returns {describe(out)}, which has no {name!r}.{hint}"
    )


def _by_index(out: Any, index: int) -> Any:
    if isinstance(out, torch.Tensor):
        raise ValueError(
            f"output: {index} picks an element of a tuple, but the model's forward returns "
            f"{describe(out)}; leave output= out"
        )
    items = out.to_tuple() if hasattr(out, "to_tuple") else out
    if not isinstance(items, (tuple, list)):
        raise ValueError(
            f"output: {index} picks an element of a tuple, but the model's forward returns "
            f"{describe(out)}; name a field instead"
        )
    if not -len(items) <= index < len(items):
        raise ValueError(
            f"output: index {index} is outside the {len(items)} elements the model's forward "
            "returns"
        )
    return items[index]


def pick(out: Any, select: Any) -> torch.Tensor:
    """The tensor of scores in what a forward returned (``select`` as :class:`OutputSpec`).

    Raises ``ValueError`` naming ``output`` when ``select`` finds nothing or no tensor.

    Examples
    --------
    >>> from collections import namedtuple
    >>> Out = namedtuple("Out", "logits hidden")
    >>> pick(Out(torch.ones(2, 3), None), None).shape
    torch.Size([2, 3])
    >>> pick((torch.zeros(2), torch.ones(2, 3)), 1).shape
    torch.Size([2, 3])
    >>> pick({"logit": torch.ones(2, 3)}, "logits")
    Traceback (most recent call last):
    ValueError: output: the model's forward returns a dict with keys 'logit', which has no 'logits'. Did you mean 'logit'?
    """
    if select is None:
        if isinstance(out, torch.Tensor):
            return out
        logits = _logits(out)
        if logits is not None:
            return logits
        hint = (
            "an element's index (output=0)"
            if isinstance(out, (tuple, list))
            else "a field or key name (output='scores')"
        )
        raise ValueError(
            f"model: its forward returns {describe(out)}, not a tensor of scores; choose the "
            f"scores with ia.model(module, output=...): {hint}, or a callable"
        )
    if callable(select):
        value = select(out)
        what = f"the callable {getattr(select, '__qualname__', 'output')}"
    elif isinstance(select, str):
        value, what = _by_name(out, select), repr(select)
    else:
        value, what = _by_index(out, select), f"element {select}"
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"output: {what} gives {describe(value)}, not a tensor of scores "
            "([N, classes], [N] or [N, L, V])"
        )
    return value


def scores(out: Any, spec: OutputSpec) -> torch.Tensor:
    """The scores ``[N, C]`` of what a forward returned, read by ``spec``.

    ``[N]`` is one class; ``[N, L, V]`` needs a position (or ``flatten``).

    Examples
    --------
    >>> scores(torch.arange(3.0), OutputSpec()).tolist()
    [[0.0], [1.0], [2.0]]
    >>> seq = torch.arange(12.0).reshape(1, 3, 4)
    >>> scores(seq, OutputSpec(position=-1)).tolist(), scores(seq, OutputSpec(flatten=True)).shape
    ([[8.0, 9.0, 10.0, 11.0]], torch.Size([1, 12]))
    >>> scores(seq, OutputSpec(position=3))
    Traceback (most recent call last):
    ValueError: position: 3 is outside the model's sequence of length 3 (scores [1, 3, 4]; valid -3..2)
    """
    t = pick(out, spec.select)
    shape = list(t.shape)
    if t.ndim == 3:
        length = t.shape[1]
        if spec.position is not None:
            if not -length <= spec.position < length:
                raise ValueError(
                    f"position: {spec.position} is outside the model's sequence of length "
                    f"{length} (scores {shape}; valid {-length}..{length - 1})"
                )
            return t[:, spec.position]
        if spec.flatten:
            return t.reshape(t.shape[0], -1)
        raise ValueError(
            f"model: its scores are a sequence {shape} = [N, L, V]; choose a position with "
            "ia.model(module, position=-1) (next-token scores), or name a position in the "
            "target: ia.at(position, class)"
        )
    if spec.position is not None and t.ndim in (1, 2):
        raise ValueError(
            f"position: the model's scores have shape {shape}, with no sequence to take a "
            "position of; position= reads sequence scores [N, L, V]"
        )
    if t.ndim == 1:
        return t[:, None]
    if t.ndim == 2:
        return t
    raise ValueError(
        f"model: its scores have shape {shape}; expected [N, classes], [N] or a sequence "
        "[N, L, V] (reduce others with ia.model(module, output=callable))"
    )


@contextlib.contextmanager
def selecting(module: torch.nn.Module, spec: OutputSpec | None) -> Iterator[None]:
    """Inside the block, every forward of ``module`` returns its scores ``[N, C]``.

    A forward hook on ``module`` (removed on exit) replaces what it returns; a plain
    ``[N, C]`` tensor passes unchanged. TorchScript modules refuse hooks: they are run as
    they are, and a spec other than the default is refused.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3))
    >>> with selecting(net, OutputSpec(lambda out: out.sum(1))):
    ...     tuple(net(torch.ones(4, 2)).shape)
    (4, 1)
    >>> len(net._forward_hooks)
    0
    """
    spec = spec or OutputSpec()
    if not hookable(module):
        if not spec.default:
            raise ValueError(
                "output: a TorchScript model cannot have its scores selected (TorchScript "
                "refuses forward hooks); return the scores from its forward"
            )
        yield
        return
    with own_hooks() as mine:

        @tagged
        def hook(_m: torch.nn.Module, _i: object, out: Any) -> torch.Tensor | None:
            if not mine():  # another thread's forward pass
                return None
            if spec.default and isinstance(out, torch.Tensor) and out.ndim == 2:
                return None  # the usual classifier: nothing to read
            return scores(out, spec)

        handle = module.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()


class Scored(torch.nn.Module):
    """A module whose forward returns ``inner``'s scores ``[N, C]`` read by ``spec``.

    For models run whole, without layer hooks: the left model resolving a disagreement's
    targets, the two models of a disagreement.

    Examples
    --------
    >>> inner = torch.nn.Linear(2, 3)
    >>> Scored(inner, OutputSpec(lambda out: out[:, 0]))(torch.ones(4, 2)).shape
    torch.Size([4, 1])
    """

    def __init__(self, inner: torch.nn.Module, spec: OutputSpec | None):
        super().__init__()
        self.inner = inner
        self.spec = spec or OutputSpec()
        self.training = inner.training

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """``inner``'s scores.

        Examples
        --------
        >>> Scored(torch.nn.Identity(), None)(torch.ones(2)).shape
        torch.Size([2, 1])
        """
        return scores(self.inner(*args, **kwargs), self.spec)
