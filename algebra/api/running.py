"""What the neuron stages check before they run, and show while they run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..config import options
from ..kernels.capture import hookable
from ..kernels.visualize import Progress


def check_hookable(module: torch.nn.Module) -> None:
    """Refuse a TorchScript model: the neuron stages read its layers through hooks.

    Examples
    --------
    >>> check_hookable(torch.jit.script(torch.nn.Linear(2, 2)))
    Traceback (most recent call last):
    ValueError: model: the neuron stages read the decision layer through forward hooks, which TorchScript refuses; load the model as a torch.export archive or a Python module
    """
    if not hookable(module):
        raise ValueError(
            "model: the neuron stages read the decision layer through forward hooks, which "
            "TorchScript refuses; load the model as a torch.export archive or a Python module"
        )


@contextlib.contextmanager
def progress_bar(total: int, what: str) -> Iterator[Progress | None]:
    """A tqdm bar updated once per step, or nothing when ``ia.options.progress`` is off.

    Examples
    --------
    >>> import algebra as ia
    >>> with ia.set_options(progress=False), progress_bar(10, "steps") as bar:
    ...     bar is None
    True
    """
    if not options.progress:
        yield None
        return
    from tqdm.auto import tqdm  # the bar only: importing tqdm at start-up is not needed

    bar = tqdm(total=total, desc=what, unit="step", leave=False)

    def update(step: int, steps: int, loss: float) -> None:
        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        bar.update(1)

    try:
        yield update
    finally:
        bar.close()
