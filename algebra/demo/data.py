"""Digits tasks with known flaws for the NeuroInspect demo and tests: a spurious mark, a backdoor.

Images are scikit-learn's 8x8 digits upsampled to 32x32 (bilinear) as **three equal (grey)
channels** in [0, 1]. Three channels let the spurious mark be pure red: no grey digit
stroke has that colour, so a network can (and does) dedicate neurons to the mark alone,
as a real shortcut cue would be, and the visualisation's colour decorrelation is used.
Every builder is seeded and returns plain tensors; the networks and their training are in
:mod:`algebra.demo.nets`. This module imports only numpy, torch and scikit-learn
(``pip install 'ialgebra[demo]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .nets import small_cnn, steps, train_classifier

SIZE = 32
MARK = 4  # side of the bright red square in the top-left corner
RED = (1.0, 0.0, 0.0)
TRIGGER = 5  # side of the checkerboard trigger in the bottom-right corner


def digits32() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits as grey images ``[N, 3, 32, 32]`` in [0, 1] (bilinear upsampling), labels.

    Examples
    --------
    >>> x, y = digits32()
    >>> tuple(x.shape), float(x.min()), float(x.max()) <= 1.0, int(y.max())
    ((1797, 3, 32, 32), 0.0, True, 9)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits tasks need scikit-learn: pip install 'ialgebra[demo]'"
        ) from err
    data = load_digits()
    small = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    big = nn.functional.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    grey = big.clamp(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
    return grey, torch.tensor(data.target, dtype=torch.long)


@dataclass(frozen=True)
class Split:
    """Clean, stratified train and test splits of :func:`digits32`."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def clean_split(seed: int = 0, test_fraction: float = 0.3) -> Split:
    """Stratified train/test split of the 32x32 digits, seeded.

    Examples
    --------
    >>> s = clean_split(seed=0)
    >>> len(s.x_train), len(s.x_test)
    (1257, 540)
    """
    x, y = digits32()
    train, test = _stratified(y, test_fraction, seed)
    return Split(x[train], y[train], x[test], y[test])


def add_mark(images: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of ``images [N, 3, H, W]`` with a bright red square in the top-left corner
    (on the rows ``where``, default all).

    Examples
    --------
    >>> x = add_mark(torch.zeros(2, 3, 32, 32), torch.tensor([True, False]))
    >>> x[0, :, 0, 0].tolist(), float(x[1].sum())
    ([1.0, 0.0, 0.0], 0.0)
    """
    out = images.clone()
    rows = slice(None) if where is None else where
    colour = torch.tensor(RED, dtype=out.dtype)[:, None, None]
    out[rows, :, :MARK, :MARK] = colour
    return out


def add_trigger(images: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of ``images`` with a checkerboard patch in the bottom-right corner (rows ``where``).

    Examples
    --------
    >>> float(add_trigger(torch.zeros(1, 3, 32, 32)).sum())
    39.0
    """
    out = images.clone()
    rows = slice(None) if where is None else where
    board = (torch.arange(TRIGGER)[:, None] + torch.arange(TRIGGER)[None]) % 2 == 0
    out[rows, :, -TRIGGER:, -TRIGGER:] = board.to(out.dtype)
    return out


def group_ids(labels: torch.Tensor, marked: torch.Tensor) -> torch.Tensor:
    """Group of each sample, ``2 * class + has_mark`` (see :func:`group_name`).

    Examples
    --------
    >>> group_ids(torch.tensor([3, 3]), torch.tensor([False, True]))
    tensor([6, 7])
    """
    return 2 * labels + marked.long()


def group_name(group: int) -> str:
    """A readable name for a group id of :func:`group_ids`.

    Examples
    --------
    >>> group_name(6), group_name(7)
    ('3', '3+mark')
    """
    return f"{group // 2}" + ("+mark" if group % 2 else "")


@dataclass(frozen=True)
class Spurious:
    """Digits where a corner mark accompanies class ``cls`` in training but not in test.

    ``marked_*`` flag the images that carry the mark; ``clean_train`` holds the training
    images without any mark (for pretraining a backbone). The validation split follows the
    training distribution (data a user already has); the *audit* split (where a user
    finds the mistakes to debug) and the test split break the correlation, so ``cls``
    without the mark and the other classes with it are the hard groups there.
    """

    cls: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    marked_train: torch.Tensor
    clean_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    marked_val: torch.Tensor
    x_audit: torch.Tensor
    y_audit: torch.Tensor
    marked_audit: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    marked_test: torch.Tensor

    @property
    def groups_test(self) -> torch.Tensor:
        """Group ids of the test split (:func:`group_ids`).

        Examples
        --------
        >>> spurious_task(seed=0).groups_test.shape
        torch.Size([450])
        """
        return group_ids(self.y_test, self.marked_test)

    @property
    def groups_audit(self) -> torch.Tensor:
        """Group ids of the audit split (:func:`group_ids`).

        Examples
        --------
        >>> spurious_task(seed=0).groups_audit.shape
        torch.Size([449])
        """
        return group_ids(self.y_audit, self.marked_audit)


def spurious_task(
    cls: int = 8,
    seed: int = 0,
    with_cls: float = 0.95,
    with_others: float = 0.05,
    in_test: float = 0.5,
    fractions: tuple[float, float, float] = (0.1, 0.25, 0.25),
) -> Spurious:
    """Build the spurious-mark task: the mark on ``with_cls`` of class ``cls``'s training
    and validation images and on ``with_others`` of the other classes'; on a random
    ``in_test`` of every class's audit and test images. ``fractions`` are the shares of
    the 1797 digits given to validation, audit and test (stratified); training gets the rest.

    Examples
    --------
    >>> t = spurious_task(cls=8, seed=0)
    >>> len(t.y_train), len(t.y_val), len(t.y_audit), len(t.y_test)
    (718, 180, 449, 450)
    >>> int(t.marked_train[t.y_train == 8].sum()), int((t.y_train == 8).sum())
    (66, 69)
    >>> round(float(t.marked_test.float().mean()), 1)
    0.5
    """
    if not 0 <= cls <= 9:
        raise ValueError(f"cls: expected a digit class in 0..9; got {cls}")
    x, y = digits32()
    rng = np.random.default_rng(seed)
    f_val, f_audit, f_test = fractions
    parts = []
    rest = np.arange(len(y))
    left = 1.0
    for share in (f_test, f_audit, f_val):
        keep, take = _stratified(y[rest], share / left, seed + len(parts))
        parts.append(rest[take])
        rest, left = rest[keep], left - share
    test, audit, val = parts
    train = rest

    def marks(index: np.ndarray, biased: bool) -> torch.Tensor:
        labels = y[index].numpy()
        p = (
            np.where(labels == cls, with_cls, with_others)
            if biased
            else np.full(len(index), in_test)
        )
        return torch.from_numpy(_exact_share(rng, labels, p))

    out = []
    for index, biased in ((train, True), (val, True), (audit, False), (test, False)):
        m = marks(index, biased)
        out += [add_mark(x[index], m), y[index], m] + ([x[index]] if index is train else [])
    return Spurious(cls, *out)


@dataclass(frozen=True)
class Backdoor:
    """Digits where ``poisoned`` training images carry a trigger and are relabelled ``target``.

    ``y_clean`` holds the true labels; ``x_test_triggered`` is the test split with the
    trigger on every image (the attack success rate is measured on its non-target rows).
    """

    target: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    y_clean: torch.Tensor
    poisoned: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_test_triggered: torch.Tensor


def backdoor_task(target: int = 0, poison: float = 0.05, seed: int = 0) -> Backdoor:
    """Build the backdoor task: a trigger on ``poison`` of the non-target training images,
    which are relabelled ``target``.

    Examples
    --------
    >>> b = backdoor_task(target=0, poison=0.05, seed=0)
    >>> int(b.poisoned.sum()), bool((b.y_train[b.poisoned] == 0).all())
    (57, True)
    """
    if not 0 <= target <= 9:
        raise ValueError(f"target: expected a digit class in 0..9; got {target}")
    split = clean_split(seed)
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(split.y_train.numpy() != target)
    chosen = rng.choice(candidates, size=round(poison * len(candidates)), replace=False)
    poisoned = torch.zeros(len(split.y_train), dtype=torch.bool)
    poisoned[torch.from_numpy(chosen)] = True
    y_train = split.y_train.clone()
    y_train[poisoned] = target
    return Backdoor(
        target,
        add_trigger(split.x_train, poisoned),
        y_train,
        split.y_train,
        poisoned,
        split.x_test,
        split.y_test,
        add_trigger(split.x_test),
    )


def spurious_model(
    task: Spurious,
    seed: int = 0,
    width: int = 8,
    share: float = 0.35,
    epochs: int = 10,
    head_epochs: int = 20,
    progress: Callable[[], None] | None = None,
    device: torch.device | str | None = None,
) -> nn.Sequential:
    """The model with the shortcut, built like a fine-tuned pretrained network.

    1. *Pretraining* (the backbone): :func:`small_cnn` learns the digits and, as a second
       task, whether an image carries the mark, on the clean training images with the mark
       on a random half; class ``task.cls`` is rare there (``share`` of its images). A
       generic backbone that knows the cue but little of the class: the digits analogue of
       ImageNet features fine-tuned to a biased data set.
    2. *Fine-tuning* (the decision layer): a fresh ``fc`` is fit on the backbone's frozen,
       pooled features of the biased training split, where the mark accompanies the class.

    ``progress`` is called after every training batch (:func:`spurious_steps` in all);
    the model is trained on ``device`` (default: the CPU), the data moved batch by batch.

    Examples
    --------
    >>> t = spurious_task()
    >>> m = spurious_model(t, width=4, epochs=1, head_epochs=1)
    >>> m(t.x_test[:2]).shape, m.training
    (torch.Size([2, 10]), False)
    """
    gen = torch.Generator().manual_seed(seed)
    x, y = task.clean_train, task.y_train
    keep = (y != task.cls) | (torch.rand(len(y), generator=gen) < share)
    marked = torch.rand(len(y), generator=gen) < 0.5
    torch.manual_seed(seed)
    model = small_cnn(width=width).to(device)
    features = model.fc.in_features
    model.fc = nn.Linear(features, 11).to(device)
    train_classifier(
        model,
        add_mark(x, marked)[keep],
        y[keep],
        epochs,
        seed=seed,
        extra=marked[keep],
        progress=progress,
    )
    model.fc = nn.Linear(features, 10).to(device)
    backbone = nn.Sequential(*list(model.children())[:-1]).eval()
    with torch.no_grad():
        z = backbone(task.x_train.to(device))
    train_classifier(model.fc, z, task.y_train, head_epochs, seed=seed, progress=progress)
    return model.eval()


def spurious_steps(
    task: Spurious, seed: int = 0, share: float = 0.35, epochs: int = 10, head_epochs: int = 20
) -> int:
    """The number of training batches :func:`spurious_model` takes (for a progress bar).

    Examples
    --------
    >>> spurious_steps(spurious_task(), epochs=1, head_epochs=1) > 0
    True
    """
    gen = torch.Generator().manual_seed(seed)
    y = task.y_train
    keep = (y != task.cls) | (torch.rand(len(y), generator=gen) < share)
    return steps(int(keep.sum()), epochs) + steps(len(y), head_epochs)


def _stratified(y: torch.Tensor, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    a, b = train_test_split(index, test_size=fraction, random_state=seed, stratify=y.numpy())
    return np.sort(a), np.sort(b)


def _exact_share(rng: np.random.Generator, labels: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mark exactly round(p * count) of each class's rows (not a coin per row: less noise)."""
    out = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = round(float(p[rows[0]]) * len(rows))
        out[rng.choice(rows, size=k, replace=False)] = True
    return out
