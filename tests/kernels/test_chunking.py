"""Chunking units: path and sample chunks, packing targets, chunk sizes under a budget."""

from __future__ import annotations

import itertools

import pytest
import torch

from algebra.kernels.chunks import count_chunks, path_chunks, sample_chunks
from algebra.kernels.memory import Profile, chunk_rows, chunk_targets, row_bytes
from algebra.kernels.targets import pack

# Path chunks --------------------------------------------------------------------------


def _cover(steps: int, n: int, per_chunk: int) -> torch.Tensor:
    hits = torch.zeros(steps, n, dtype=torch.long)
    for (s0, s1), (n0, n1) in path_chunks(steps, n, per_chunk):
        assert 0 <= s0 < s1 <= steps and 0 <= n0 < n1 <= n
        assert (s1 - s0) * (n1 - n0) <= per_chunk, "chunk over its row bound"
        if s1 - s0 > 1:  # several steps only over whole sample ranges (summed by one einsum)
            assert (n0, n1) == (0, n)
        hits[s0:s1, n0:n1] += 1
    return hits


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 13])
def test_path_chunks_cover_every_point_once(steps):
    for n, per_chunk in itertools.product(range(1, 10), range(1, 4 * 13 * 9)):
        hits = _cover(steps, n, per_chunk)
        assert bool((hits == 1).all()), (steps, n, per_chunk)
        assert count_chunks(steps, n, per_chunk) == len(list(path_chunks(steps, n, per_chunk)))


def test_path_chunks_use_the_bound():
    # Unbounded: one chunk; room for k whole steps: ceil(steps / k) chunks.
    assert list(path_chunks(6, 4, 10**6)) == [((0, 6), (0, 4))]
    assert count_chunks(6, 4, 8) == 3
    assert count_chunks(6, 4, 11) == 3
    assert count_chunks(6, 4, 12) == 2
    # Less than one step's samples: one step at a time, the samples in pieces.
    assert count_chunks(6, 4, 3) == 12
    assert count_chunks(6, 4, 1) == 24


def test_sample_chunks_are_consecutive_and_bounded():
    for n, per_chunk in itertools.product(range(1, 12), range(1, 14)):
        chunks = list(sample_chunks(n, per_chunk))
        assert chunks[0][0] == 0 and chunks[-1][1] == n
        for (_, a1), (b0, _) in itertools.pairwise(chunks):
            assert a1 == b0
        assert all(0 < b - a <= per_chunk for a, b in chunks)
        assert len(chunks) == -(-n // per_chunk)


# Packing targets ----------------------------------------------------------------------


def _check_pack(rows: list[torch.Tensor], classes: int) -> None:
    packed, slots = pack(rows, classes)
    n = rows[0].shape[1]
    needed = [set() for _ in range(n)]
    for r in rows:
        for t, j in itertools.product(range(r.shape[0]), range(n)):
            needed[j].add(int(r[t, j]))
    assert packed.shape == (max(len(s) for s in needed), n)
    for j in range(n):
        column = packed[:, j].tolist()
        assert len(set(column)) == len(column), "a class packed twice for one sample"
        assert all(0 <= c < classes for c in column)
        assert needed[j] <= set(column)
    for r, slot in zip(rows, slots, strict=True):
        assert slot.shape == r.shape
        # Every requested (sample, class) sits in its slot.
        assert torch.equal(packed.gather(0, slot), r)


def test_pack_puts_every_request_in_its_slot():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        classes = int(torch.randint(1, 9, (1,), generator=gen))
        n = int(torch.randint(1, 7, (1,), generator=gen))
        requests = int(torch.randint(1, 5, (1,), generator=gen))
        rows = [
            torch.randint(
                0, classes, (int(torch.randint(1, 5, (1,), generator=gen)), n), generator=gen
            )
            for _ in range(requests)
        ]
        _check_pack(rows, classes)


def test_pack_typical_requests():
    # "all", a per-sample target, topk(2) per sample and one class, for 3 samples of 4 classes
    all_classes = torch.arange(4)[:, None].expand(4, 3)
    per_sample = torch.tensor([[3, 0, 2]])
    topk = torch.tensor([[1, 3, 0], [2, 1, 3]])
    index = torch.full((1, 3), 2)
    # sample 0 needs {1, 2, 3}, sample 1 {0, 1, 2, 3}, sample 2 {0, 2, 3}: 4 rows
    packed, _ = pack([per_sample, topk, index], 4)
    assert packed.shape == (4, 3)
    _check_pack([per_sample, topk, index], 4)
    # without sample 1's class 1, three rows suffice
    packed, _ = pack([per_sample, topk[:1], index], 4)
    assert packed.shape == (3, 3)
    _check_pack([per_sample, topk[:1], index], 4)
    packed, _ = pack([all_classes, per_sample, topk], 4)
    assert packed.shape == (4, 3)  # everything is needed: exactly the classes, no more
    _check_pack([all_classes, per_sample, topk, index], 4)


def test_pack_one_request_keeps_its_rows():
    rows = torch.tensor([[2, 0, 1], [0, 2, 2]])
    packed, (slot,) = pack([rows], 3)
    assert torch.equal(packed.gather(0, slot), rows)
    assert packed.shape == (2, 3)


# Chunk sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "per_row"), list(itertools.product([1, 2, 7, 64, 1000], [0, 1, 3, 100, 10**6]))
)
def test_chunk_rows_bounds(rows, per_row):
    assert chunk_rows(rows, per_row, None) == rows
    previous = 0
    for budget in (1, 2, 50, 99, 100, 101, 5_000, 10**5, 10**9):
        got = chunk_rows(rows, per_row, budget)
        assert 1 <= got <= rows
        assert got >= previous  # more budget, never smaller chunks
        previous = got
        if got > 1:
            assert got * max(per_row, 1) <= budget  # fits, unless a single row is too big
        if rows * max(per_row, 1) <= budget:
            assert got == rows
        elif got < rows:
            assert (got + 1) * max(per_row, 1) > budget  # the largest that fits


@pytest.mark.parametrize("targets", [1, 2, 5, 10])
def test_chunk_targets_bounds(targets):
    profile = Profile(saved=1000, largest=100)
    assert chunk_targets(targets, 4, profile, 10, 10, None) == targets
    previous = 0
    for budget in (1, 4_000, 5_000, 6_000, 10_000, 50_000, 10**9):
        got = chunk_targets(targets, 4, profile, 10, 10, budget)
        assert 1 <= got <= targets and got >= previous
        previous = got
        if got > 1:  # the forward's memory plus got targets' buffers fit
            assert 4 * (1000 + 2 * 10) + got * 4 * (3 * 100 + 10) <= budget
    assert previous == targets


def test_row_bytes_grows_with_targets_and_gradients():
    profile = Profile(saved=1000, largest=100)
    no_grad = row_bytes(profile, 10, 10, targets=0, grad=False)
    one = row_bytes(profile, 10, 10, targets=1, grad=True)
    five = row_bytes(profile, 10, 10, targets=5, grad=True)
    assert no_grad < one < five
    assert five - one == 4 * (row_bytes(profile, 10, 10, 2, True) - one)
