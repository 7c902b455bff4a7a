"""The demo's trained models, cached on disk under a hash of their recipe.

A :class:`Recipe` says everything that decides a model's weights: the data, the
architecture, the seed, the epochs and the device kind (a GPU's arithmetic differs from the
CPU's). :func:`trained` loads the weights stored under the recipe's hash, or trains the
model with a progress bar (``ia.options.progress``) and stores them. The cache folder is
``$IALGEBRA_CACHE`` or ``~/.cache/ialgebra``; weights are loaded with
``torch.load(weights_only=True)``, and a file that does not load, or holds another
recipe, is retrained and replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import options

VERSION = 1  # bumped when the training code changes what a recipe produces


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a trained model's weights; ``key`` is its hash.

    Examples
    --------
    >>> a = Recipe("cnn", data="digits32", arch="small_cnn(width=8)", seed=0, epochs=8)
    >>> a.key("cpu") == Recipe("cnn", "digits32", "small_cnn(width=8)", 0, 8).key("cpu")
    True
    >>> a.key("cpu") == Recipe("cnn", "digits32", "small_cnn(width=8)", 1, 8).key("cpu")
    False
    >>> len(a.key("cpu")), a.key("cpu") == a.key("cuda")
    (16, False)
    """

    name: str
    data: str
    arch: str
    seed: int
    epochs: int
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self, device: str | torch.device) -> str:
        """16 hex digits of a SHA-256 over the recipe, the device kind and :data:`VERSION`.

        Examples
        --------
        >>> Recipe("m", "d", "a", 0, 1).key("cpu") == Recipe("m", "d", "a", 0, 1).key("cpu:0")
        True
        """
        kind = torch.device(device).type
        text = json.dumps([VERSION, kind, asdict(self)], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Where trained models are kept: ``$IALGEBRA_CACHE``, else ``~/.cache/ialgebra``.

    Examples
    --------
    >>> import os
    >>> before = os.environ.pop("IALGEBRA_CACHE", None)
    >>> cache_dir().parts[-2:]
    ('.cache', 'ialgebra')
    >>> os.environ["IALGEBRA_CACHE"] = "/tmp/ia-cache"
    >>> str(cache_dir())
    '/tmp/ia-cache'
    >>> if before is None:
    ...     del os.environ["IALGEBRA_CACHE"]
    ... else:
    ...     os.environ["IALGEBRA_CACHE"] = before
    """
    folder = os.environ.get("IALGEBRA_CACHE")
    return Path(folder).expanduser() if folder else Path.home() / ".cache" / "ialgebra"


@dataclass
class Trained:
    """A trained (or loaded) model, whether it came from the cache, and the seconds it took."""

    module: nn.Module
    recipe: Recipe
    cached: bool
    seconds: float
    path: Path


def trained(
    recipe: Recipe,
    blank: Callable[[], nn.Module],
    fit: Callable[[nn.Module, Callable[[], None]], nn.Module | None],
    steps: int,
    device: str | torch.device = "cpu",
    folder: Path | None = None,
) -> Trained:
    """The model of ``recipe``: loaded from the cache, or trained and stored there.

    Parameters
    ----------
    recipe
        What decides the weights (hashed into the file name with the device kind).
    blank
        Builds the untrained architecture (the weights are loaded into it).
    fit
        ``fit(module, tick)`` trains ``module`` in place (or returns a new module), calling
        ``tick()`` after every batch.
    steps
        How many ticks ``fit`` makes (the length of the progress bar).
    device
        Where the model trains and lives.
    folder
        The cache folder (default :func:`cache_dir`); models go to ``folder/models``.

    Returns
    -------
    Trained

    Examples
    --------
    >>> import tempfile, algebra as ia
    >>> folder = Path(tempfile.mkdtemp())
    >>> recipe = Recipe("lin", "none", "linear(2, 2)", seed=0, epochs=0)
    >>> def fit(module, tick):
    ...     tick()
    >>> with ia.set_options(progress=False):
    ...     first = trained(recipe, lambda: nn.Linear(2, 2), fit, 1, folder=folder)
    ...     again = trained(recipe, lambda: nn.Linear(2, 2), fit, 1, folder=folder)
    >>> first.cached, again.cached, torch.equal(first.module.weight, again.module.weight)
    (False, True, True)
    >>> first.path.name == f"lin-{recipe.key('cpu')}.pt"
    True
    """
    device = torch.device(device)
    path = (folder or cache_dir()) / "models" / f"{recipe.name}-{recipe.key(device)}.pt"
    start = time.perf_counter()
    loaded = _load(path, recipe, blank, device)
    if loaded is not None:
        return Trained(loaded, recipe, True, time.perf_counter() - start, path)
    torch.manual_seed(recipe.seed)
    module = blank().to(device)
    with progress(steps, f"training {recipe.name}") as tick:
        module = fit(module, tick) or module
    module.eval()
    _save(path, recipe, module)
    return Trained(module, recipe, False, time.perf_counter() - start, path)


@contextlib.contextmanager
def progress(total: int, what: str, unit: str = "batch") -> Iterator[Callable[..., None]]:
    """A tqdm bar of ``total`` steps (when ``ia.options.progress`` is on); yields
    ``tick(note="")``, which advances the bar and shows ``note`` beside it.

    Examples
    --------
    >>> import algebra as ia
    >>> with ia.set_options(progress=False), progress(3, "nothing shown") as tick:
    ...     tick()
    """
    if not options.progress:
        yield lambda note="": None
        return
    from tqdm.auto import tqdm  # only when a bar is shown

    bar = tqdm(total=total, desc=what, unit=unit, leave=False, dynamic_ncols=True)

    def tick(note: str = "") -> None:
        bar.update(1)
        if note:  # shown at once: a step's note says what runs until the next tick
            bar.set_postfix_str(note)

    try:
        yield tick
    finally:
        bar.close()


def _load(
    path: Path, recipe: Recipe, blank: Callable[[], nn.Module], device: torch.device
) -> nn.Module | None:
    if not path.exists():
        return None
    try:
        stored = torch.load(path, map_location=device, weights_only=True)
        if stored.get("recipe") != _plain(recipe):
            return None
        module = blank().to(device)
        module.load_state_dict(stored["weights"])
    except Exception:  # a partial or foreign file: train again and replace it
        return None
    return module.eval()


def _save(path: Path, recipe: Recipe, module: nn.Module) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    weights = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save({"recipe": _plain(recipe), "weights": weights}, partial)
    os.replace(partial, path)  # atomic: a reader never sees half a file


def _plain(recipe: Recipe) -> str:
    return json.dumps([VERSION, asdict(recipe)], sort_keys=True, default=str)
