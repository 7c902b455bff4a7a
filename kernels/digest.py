"""Content checksums of tensors, computed on each tensor's own device at memory bandwidth.

Version counters miss writes through ``.data``, NumPy views and other aliases, so tokens
of model state and of inputs include a checksum of the bytes. It is exact integer
arithmetic on the tensor's storage read as 64-bit words: a matrix ``[rows, 1024]`` of
words times a vector of odd column weights, then the row results times odd row weights,
wrapping modulo 2**64. Any change of a single word changes it (odd weights are invertible
modulo 2**64), and so does moving values between positions, except in contrived cases.
One matrix-vector product per tensor, no copy of the data; one device synchronisation for
all the tensors of a device.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

# Words per row of the matrix each tensor's storage is read as.
COLUMNS = 1024
# A large odd multiplier (2**64 / golden ratio, as a signed int64) spreads the weights' bits.
_SPREAD = 0x9E3779B97F4A7C15 - (1 << 64)
_weights: dict[torch.device, torch.Tensor] = {}
_weights_lock = threading.Lock()


# Tensors smaller than this are checksummed together (one copy into a buffer, one product):
# per-tensor kernel launches would cost more than reading them.
SMALL_BYTES = 1 << 20


def content_digest(tensors: Sequence[torch.Tensor]) -> int:
    """One checksum of the values (the bytes) of all ``tensors``, in order.

    Meta tensors have no values and add nothing; shapes, dtypes and identities are the
    caller's to record.

    Examples
    --------
    >>> a, b = torch.arange(6.0), torch.ones(3, dtype=torch.int64)
    >>> d = content_digest([a, b])
    >>> d == content_digest([torch.arange(6.0), torch.ones(3, dtype=torch.int64)])
    True
    >>> d == content_digest([a.flip(0), b])
    False
    >>> a.numpy()[0] = 1.0  # a write that the version counter does not see
    >>> d == content_digest([a, b])
    False
    """
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    small: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors:
        if t.device.type == "meta" or t.numel() == 0:
            continue
        data = t.detach()
        plain = data.layout == torch.strided and not data.is_quantized
        if plain and data.numel() * data.element_size() < SMALL_BYTES:
            small.setdefault(t.device, []).append(data)
        else:
            by_device.setdefault(t.device, []).append(_digest(_words(data)))
    for device, group in small.items():
        by_device.setdefault(device, []).append(_digest(_words(_joined(group))))
    total = 0
    for parts in by_device.values():  # one synchronisation per device
        values = torch.stack(parts) * _odd_weights(len(parts), parts[0].device)[: len(parts)]
        total = (total * 31 + int(values.sum())) % (1 << 64)
    return total


def _joined(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Small tensors' bytes, one after another, in one uint8 buffer."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t.reshape(-1))
    flat = [torch.cat(group) for group in by_dtype.values()]
    return torch.cat([_bytes(f) for f in flat])


def _digest(parts: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The checksum of one tensor's words and tail, an int64 scalar on its device (no sync)."""
    words, tail = parts
    rows = words.numel() // COLUMNS
    weights = _odd_weights(max(COLUMNS, rows + 2), words.device)
    main = words[: rows * COLUMNS].view(rows, COLUMNS)
    rest = words[rows * COLUMNS :]
    total = (_times(main, weights[:COLUMNS]) * weights[:rows]).sum()
    total = total + weights[rows] * (rest * weights[: rest.numel()]).sum()
    return total + weights[rows + 1] * (tail * weights[: tail.numel()]).sum()


def _times(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    if matrix.device.type == "cpu":
        return matrix @ vector  # reads the matrix once, no temporary
    return (matrix * vector).sum(dim=1)  # integer matmul is CPU-only in torch


def _words(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The tensor's bytes as int64 words, and the last ``nbytes % 8`` bytes as int64."""
    data = t.detach()
    if data.is_quantized:
        data = data.int_repr()
    elif data.layout != torch.strided:
        data = data.to_dense()
    raw = _bytes(data.reshape(-1))  # copies only when not contiguous
    whole = raw.numel() // 8 * 8
    try:
        words = raw[:whole].view(torch.int64)
    except RuntimeError:  # storage offset not a multiple of 8 bytes
        words = raw[:whole].clone().view(torch.int64)
    return words, raw[whole:].to(torch.int64)


def _bytes(flat: torch.Tensor) -> torch.Tensor:
    flat = flat.resolve_conj().resolve_neg()
    return flat.view(torch.uint8) if flat.dtype != torch.bool else flat.to(torch.uint8)


def _odd_weights(n: int, device: torch.device) -> torch.Tensor:
    """At least ``n`` distinct odd int64 weights on ``device``, cached and grown by doubling."""
    with _weights_lock:
        cached = _weights.get(device)
        if cached is None or cached.numel() < n:
            size = max(n, 2 * (0 if cached is None else cached.numel()))
            cached = (torch.arange(size, dtype=torch.int64, device=device) * 2 + 1) * _SPREAD
            _weights[device] = cached
        return cached
