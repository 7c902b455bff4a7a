"""What every study of the demo shares: the mode's sizes, the device, the data sets and the
trained models (each built once per run, the models through the cache of
:mod:`algebra.demo.models`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..api.model import Model, model
from . import data as dd
from . import nets
from .models import Recipe, Trained, progress, trained

CLASSES = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Sizes:
    """The sizes of a run: ``full`` for ``make demo``, ``quick`` for the tests.

    Examples
    --------
    >>> Sizes.quick().epochs < Sizes.full().epochs
    True
    """

    width: int
    epochs: int
    mlp_epochs: int
    spurious_epochs: tuple[int, int]  # backbone, head
    adversarial: int  # test inputs attacked
    shapley_samples: int
    disagreements: int  # at most this many disagreements explained
    poisoned_pool: int  # training images ranked (0: all)
    vis_steps: int
    vis_images: int
    visualized: int  # neurons visualised

    @classmethod
    def full(cls) -> Sizes:
        """The sizes of ``ialgebra demo``.

        Examples
        --------
        >>> Sizes.full().width
        8
        """
        return cls(8, 8, 10, (10, 20), 240, 25, 48, 0, 300, 4, 3)

    @classmethod
    def quick(cls) -> Sizes:
        """The sizes of ``ialgebra demo --quick`` (seconds; what the tests run).

        Examples
        --------
        >>> Sizes.quick().adversarial
        24
        """
        return cls(4, 2, 2, (2, 4), 24, 4, 6, 160, 20, 2, 2)


@dataclass
class Context:
    """The run's settings and the data and models the studies share, built on first use.

    Examples
    --------
    >>> c = Context(quick=True)
    >>> c.sizes.width, c.device.type
    (4, 'cpu')
    """

    quick: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    cache: Path | None = None
    seed: int = 0
    models: list[Trained] = field(default_factory=list)
    _tick: Callable[..., None] | None = field(default=None, repr=False)

    @property
    def sizes(self) -> Sizes:
        """The sizes of this mode.

        Examples
        --------
        >>> Context().sizes.epochs
        8
        """
        return Sizes.quick() if self.quick else Sizes.full()

    @functools.cached_property
    def clean(self) -> dd.Split:
        """The clean digits split (train 1257, test 540).

        Examples
        --------
        >>> len(Context().clean.y_test)
        540
        """
        return dd.clean_split(self.seed)

    @functools.cached_property
    def backdoor(self) -> dd.Backdoor:
        """The backdoor task: a trigger on 5 % of the training images, relabelled 0.

        Examples
        --------
        >>> int(Context().backdoor.poisoned.sum())
        57
        """
        return dd.backdoor_task(target=0, poison=0.05, seed=self.seed)

    @functools.cached_property
    def spurious(self) -> dd.Spurious:
        """The spurious-mark task (a red mark beside class 8 in training).

        Examples
        --------
        >>> Context().spurious.cls
        8
        """
        return dd.spurious_task(cls=8, seed=self.seed)

    @contextlib.contextmanager
    def stage(self, study: str, total: int) -> Iterator[None]:
        """A progress bar over a study's ``total`` steps (when ``ia.options.progress`` is
        on), advanced by :meth:`step` inside the block.

        Examples
        --------
        >>> import algebra as ia
        >>> c = Context()
        >>> with ia.set_options(progress=False), c.stage("study", 2):
        ...     c.step("first")
        ...     c.step("second")
        """
        with progress(total, study, unit="step") as tick:
            self._tick = tick
            try:
                yield
            finally:
                self._tick = None

    def step(self, what: str) -> None:
        """Say that the study's next step, ``what``, starts (a no-op outside :meth:`stage`).

        Examples
        --------
        >>> Context().step("nothing to show")
        """
        if self._tick is not None:
            self._tick(what)

    def wrap(self, done: Trained, name: str) -> Model:
        """Record a trained model and wrap it for queries, with the digit names.

        Examples
        --------
        >>> from algebra.demo.models import Recipe
        >>> t = Trained(torch.nn.Linear(2, 10), Recipe("x", "", "", 0, 0), True, 0.0, Path("x"))
        >>> Context().wrap(t, "lin").name
        'lin'
        """
        self.models.append(done)
        return model(done.module, name=name, classes=CLASSES)

    def _cnn(self, name: str, x: torch.Tensor, y: torch.Tensor, data: str, **extra: Any) -> Model:
        s = self.sizes
        recipe = Recipe(name, data, f"small_cnn(width={s.width})", self.seed, s.epochs, extra)

        def fit(module: torch.nn.Module, tick: Any) -> None:
            nets.train_classifier(module, x, y, s.epochs, seed=self.seed, progress=tick)

        done = trained(
            recipe,
            lambda: nets.small_cnn(width=s.width),
            fit,
            nets.steps(len(x), s.epochs),
            self.device,
            self.cache,
        )
        return self.wrap(done, name)

    @functools.cached_property
    def cnn(self) -> Model:
        """The CNN trained on the clean digits."""
        return self._cnn("cnn", self.clean.x_train, self.clean.y_train, "clean_split(seed)")

    @functools.cached_property
    def mlp(self) -> Model:
        """The second architecture: a two-layer perceptron on the same clean digits."""
        s, split = self.sizes, self.clean
        recipe = Recipe("mlp", "clean_split(seed)", "mlp(hidden=128)", self.seed, s.mlp_epochs)

        def fit(module: torch.nn.Module, tick: Any) -> None:
            nets.train_classifier(
                module, split.x_train, split.y_train, s.mlp_epochs, lr=1e-3, seed=self.seed,
                progress=tick,
            )  # fmt: skip

        steps = nets.steps(len(split.x_train), s.mlp_epochs)
        done = trained(recipe, nets.mlp, fit, steps, self.device, self.cache)
        return self.wrap(done, "mlp")

    @functools.cached_property
    def backdoored(self) -> Model:
        """The CNN trained on the poisoned training set."""
        b = self.backdoor
        return self._cnn("backdoored", b.x_train, b.y_train, "backdoor_task(0, 0.05, seed)")

    def retrained(self, keep: torch.Tensor, name: str) -> Model:
        """The backdoored CNN's recipe trained again on the training rows ``keep`` only.

        Examples
        --------
        >>> import tempfile, algebra as ia
        >>> c = Context(quick=True, cache=Path(tempfile.mkdtemp()))
        >>> keep = torch.zeros(len(c.backdoor.y_train), dtype=torch.bool)
        >>> keep[:64] = True
        >>> with ia.set_options(progress=False):
        ...     m = c.retrained(keep, "subset")
        >>> m.name, c.models[-1].recipe.extra["count"], c.models[-1].cached
        ('subset', 64, False)
        """
        b = self.backdoor
        rows = keep.nonzero()[:, 0]
        kept = hashlib.sha256(rows.cpu().numpy().tobytes()).hexdigest()[:16]
        return self._cnn(
            name, b.x_train[rows], b.y_train[rows], "backdoor_task(0, 0.05, seed)",
            kept=kept, count=len(rows),
        )  # fmt: skip

    @functools.cached_property
    def spurious_cnn(self) -> Model:
        """The CNN with the shortcut (NeuroInspect's setting)."""
        s, task = self.sizes, self.spurious
        epochs, head = s.spurious_epochs
        recipe = Recipe(
            "spurious", "spurious_task(8, seed)", f"small_cnn(width={s.width})", self.seed,
            epochs, {"head_epochs": head},
        )  # fmt: skip

        def fit(module: torch.nn.Module, tick: Any) -> torch.nn.Module:
            return dd.spurious_model(
                task, seed=self.seed, width=s.width, epochs=epochs, head_epochs=head,
                progress=tick, device=self.device,
            )  # fmt: skip

        steps = dd.spurious_steps(task, seed=self.seed, epochs=epochs, head_epochs=head)
        blank = functools.partial(nets.small_cnn, width=s.width)
        return self.wrap(trained(recipe, blank, fit, steps, self.device, self.cache), "spurious")


def outputs(m: Model, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The model's softmax probabilities on ``x`` (on the CPU), in eval mode, no gradients.

    Examples
    --------
    >>> m = model(torch.nn.Linear(4, 3).eval())
    >>> outputs(m, torch.rand(5, 4)).sum(1).round(decimals=4).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0]
    """
    device = next(m.module.parameters()).device
    with torch.no_grad():
        parts = [m.module(rows.to(device)).softmax(1).cpu() for rows in x.split(batch)]
    return torch.cat(parts)


def predict(m: Model, x: torch.Tensor) -> torch.Tensor:
    """The model's predicted classes on ``x`` (on the CPU).

    Examples
    --------
    >>> m = model(torch.nn.Linear(4, 3).eval())
    >>> predict(m, torch.rand(5, 4)).shape
    torch.Size([5])
    """
    return outputs(m, x).argmax(1)
