"""The numbers the demo reports: ROC AUC and curve, precision at k, and the divergence of
two interpretations (1 - cosine similarity), on plain arrays and xarray results."""

from __future__ import annotations

import numpy as np
import xarray as xr


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a random positive scores above a
    random negative (ties count one half), from the ranks (Mann-Whitney U).

    Examples
    --------
    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    >>> roc_auc(np.array([1.0, 1.0]), np.array([0, 1]))
    0.5
    """
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("positive: the ROC AUC needs both positives and negatives")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # ties share their mean rank
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every threshold, from (0, 0) to (1, 1).

    Examples
    --------
    >>> fpr, tpr = roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    hits = positive[order]
    tpr = np.r_[0.0, np.cumsum(hits) / max(hits.sum(), 1)]
    fpr = np.r_[0.0, np.cumsum(~hits) / max((~hits).sum(), 1)]
    return fpr, tpr


def precision_at(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """The share of positives among the ``k`` highest scores.

    Examples
    --------
    >>> precision_at(np.array([0.9, 0.1, 0.8, 0.7]), np.array([1, 0, 0, 1]), 2)
    0.5
    """
    top = np.argsort(-np.asarray(scores, dtype=float), kind="stable")[:k]
    return float(np.asarray(positive, dtype=bool)[top].mean())


def divergence(a: xr.DataArray, b: xr.DataArray, dim: str = "sample") -> np.ndarray:
    """1 - cosine similarity of two maps, per value of ``dim`` (0: the same direction,
    1: orthogonal, 2: opposite); a map that is all zero counts as orthogonal.

    Examples
    --------
    >>> a = xr.DataArray([[1.0, 0.0], [1.0, 1.0]], dims=("sample", "x"))
    >>> b = xr.DataArray([[2.0, 0.0], [-1.0, -1.0]], dims=("sample", "x"))
    >>> divergence(a, b).round(6).tolist()
    [0.0, 2.0]
    """
    left = np.asarray(a.transpose(dim, ...).values, dtype=np.float64).reshape(a.sizes[dim], -1)
    right = np.asarray(b.transpose(dim, ...).values, dtype=np.float64).reshape(b.sizes[dim], -1)
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    cosine = np.where(norms > 0, (left * right).sum(1) / np.where(norms > 0, norms, 1), 0.0)
    return 1.0 - cosine
