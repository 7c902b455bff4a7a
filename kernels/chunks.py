"""Chunk iteration: how a pass over ``rows`` points is cut into pieces that fit memory."""

from __future__ import annotations

from collections.abc import Iterator


def sample_chunks(n: int, per_chunk: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``(start, stop)`` ranges of at most ``per_chunk`` samples.

    Examples
    --------
    >>> list(sample_chunks(5, 2))
    [(0, 2), (2, 4), (4, 5)]
    """
    for start in range(0, n, max(1, per_chunk)):
        yield start, min(n, start + per_chunk)


def path_chunks(
    steps: int, n: int, per_chunk: int
) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    """Rectangles ``((s0, s1), (n0, n1))`` of path steps x samples, at most ``per_chunk`` rows.

    Whole steps over all samples when ``per_chunk >= n`` (so a chunk's gradients sum over
    steps with one ``einsum``); otherwise one step over a range of samples.

    Examples
    --------
    >>> list(path_chunks(4, 3, 7))
    [((0, 2), (0, 3)), ((2, 4), (0, 3))]
    >>> list(path_chunks(2, 3, 2))
    [((0, 1), (0, 2)), ((0, 1), (2, 3)), ((1, 2), (0, 2)), ((1, 2), (2, 3))]
    """
    if per_chunk >= n:
        k = per_chunk // n
        for s0 in range(0, steps, k):
            yield (s0, min(steps, s0 + k)), (0, n)
        return
    for s in range(steps):
        for n0, n1 in sample_chunks(n, per_chunk):
            yield (s, s + 1), (n0, n1)


def count_chunks(steps: int, n: int, per_chunk: int) -> int:
    """How many chunks :func:`path_chunks` yields.

    Examples
    --------
    >>> count_chunks(4, 3, 7), count_chunks(2, 3, 2), count_chunks(1, 10, 100)
    (2, 4, 1)
    """
    if per_chunk >= n:
        k = per_chunk // n
        return -(-steps // k)
    return steps * -(-n // per_chunk)
