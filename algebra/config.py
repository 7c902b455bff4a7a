"""``ia.options`` and ``ia.set_options``: switches for the optimizer and the executor.

Every optimization can be turned off, so fused and unfused runs compare (``explain()``
shows the plan either way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import did_you_mean
from .ir.attribution import method

PRECISIONS = ("fp32", "bf16")
BACKWARDS = ("auto", "batched", "sequential")


@dataclass
class OptimizerOptions:
    """The optimizer's rewrite rules, each on by default.

    ``simplify`` merges common sub-expressions and gradient requests (saliency and
    input-x-gradient of one target share a gradient); ``share_forward`` evaluates all
    requests on the same points in one forward; ``fuse_targets`` backpropagates all targets
    of a forward in one batched backward; ``share_paths`` lets integrated gradients with the
    same baseline, steps and rule share their path points; ``chunk`` splits passes to fit
    ``ia.options.memory_budget``.
    """

    simplify: bool = True
    share_forward: bool = True
    fuse_targets: bool = True
    share_paths: bool = True
    chunk: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        _check_name(self, name, "ia.options.optimizer")
        if not isinstance(value, bool):
            raise TypeError(f"optimizer.{name}: expected True or False; got {value!r}")
        object.__setattr__(self, name, value)


@dataclass
class Options:
    """Global settings; change them by attribute or temporarily with :func:`set_options`.

    ``memory_budget`` (bytes, or ``None`` for a default from the free device memory) bounds
    the working memory of each pass; ``precision`` is ``"fp32"`` or ``"bf16"`` (autocast,
    CUDA only); ``compile`` runs the forward of hook-free passes through ``torch.compile``;
    ``session_bytes`` is the default size of a :class:`~algebra.runtime.session.Session`'s memo.
    ``identity`` is the method of :meth:`Query.identity`, of anti-joins and of queries
    without ``using``: ``"shapley"`` (sampled Shapley values of the players, the paper's
    identity), or any other method's name.
    ``progress`` shows a progress bar (tqdm) during long optimisations
    (``Model.visualize``).
    ``backward`` is how the targets of one forward are differentiated:
    ``"batched"`` (one vmapped backward), ``"sequential"`` (one backward per target) or
    ``"auto"`` (sequential for CPU models with convolutions, pooling or batch norm, whose
    backward the vmapped backward runs target by target; see
    :mod:`algebra.kernels.backward_strategy`).
    """

    memory_budget: int | None = None
    precision: str = "fp32"
    compile: bool = False
    session_bytes: int = 512 * 2**20
    identity: str = "shapley"
    progress: bool = True
    backward: str = "auto"
    optimizer: OptimizerOptions = field(default_factory=OptimizerOptions)

    def __setattr__(self, name: str, value: Any) -> None:
        _check_name(self, name, "ia.options")
        if name == "memory_budget" and value is not None:
            _check_bytes(value, name)
        elif name == "session_bytes":
            _check_bytes(value, name, allow_zero=True)
        elif name == "precision" and value not in PRECISIONS:
            raise ValueError(
                f"precision: expected one of {', '.join(map(repr, PRECISIONS))}; got {value!r}"
            )
        elif name == "identity":
            _check_identity(value)
        elif name == "backward" and value not in BACKWARDS:
            raise ValueError(
                f"backward: expected one of {', '.join(map(repr, BACKWARDS))}; got {value!r}"
                + did_you_mean(str(value), BACKWARDS)
            )
        elif name in ("compile", "progress") and not isinstance(value, bool):
            raise TypeError(f"{name}: expected True or False; got {value!r}")
        elif name == "optimizer" and not isinstance(value, OptimizerOptions):
            raise TypeError("optimizer: set its flags, e.g. ia.options.optimizer.chunk = False")
        object.__setattr__(self, name, value)


def _check_identity(value: Any) -> None:
    try:
        method(value)
    except ValueError as error:  # the registry names its argument ``method``
        raise ValueError("identity" + str(error)[len("method") :]) from None


def _check_name(obj: Any, name: str, where: str) -> None:
    names = [f.name for f in fields(obj)]
    if name not in names:
        raise AttributeError(f"{where} has no option {name!r}." + did_you_mean(name, names))


def _check_bytes(value: Any, name: str, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ValueError(
            f"{name}: expected a number of bytes (an integer >= {0 if allow_zero else 1}); "
            f"got {value!r}"
        )


options = Options()


@contextlib.contextmanager
def set_options(**changes: Any) -> Iterator[Options]:
    """Change options inside a ``with`` block; restored on exit, even after an exception.

    Top-level names (``memory_budget``, ``precision``, ``compile``, ``session_bytes``)
    and the optimizer's flags (``simplify``, ``share_forward``, ``fuse_targets``,
    ``share_paths``, ``chunk``) are accepted by name.

    Parameters
    ----------
    **changes
        Option names and their values.

    Returns
    -------
    contextlib.AbstractContextManager
        Yields :data:`options`.

    Examples
    --------
    >>> import algebra as ia
    >>> with ia.set_options(memory_budget=2**30, chunk=False):
    ...     ia.options.memory_budget, ia.options.optimizer.chunk
    (1073741824, False)
    >>> ia.options.optimizer.chunk
    True
    >>> with ia.set_options(fuse_target=False):
    ...     pass
    Traceback (most recent call last):
    AttributeError: set_options: no option 'fuse_target'. Did you mean 'fuse_targets'?
    """
    top = {f.name for f in fields(Options)} - {"optimizer"}
    flags = {f.name for f in fields(OptimizerOptions)}
    for name in changes:
        if name not in top | flags:
            raise AttributeError(
                f"set_options: no option {name!r}." + did_you_mean(name, sorted(top | flags))
            )
    saved_top = {name: getattr(options, name) for name in top}
    saved_flags = replace(options.optimizer)
    try:
        for name, value in changes.items():
            setattr(options.optimizer if name in flags else options, name, value)
        yield options
    finally:
        for name, value in saved_top.items():
            object.__setattr__(options, name, value)
        for name in flags:
            object.__setattr__(options.optimizer, name, getattr(saved_flags, name))
