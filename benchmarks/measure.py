"""Timing, pass counting and peak memory of one implementation's run.

Protocol (:func:`measure`): one warm-up call per implementation, then ``repeat`` timed
rounds that interleave the implementations (rotating which goes first, since the machine
is noisy and drifts), then one instrumented call per implementation that counts passes and
records peak memory. Timed calls carry no hooks, wrappers or sampling thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# Modules whose own references to torch.autograd.grad/backward (``from torch.autograd
# import grad``) are wrapped too, so such an import cannot hide a backward from the count.
_ALIAS_PREFIXES = ("algebra", "captum", "benchmarks")


@dataclass
class PassCounts:
    """Forward calls and rows of the top module; backward calls (grad or backward)."""

    forward_calls: int = 0
    forward_rows: int = 0
    backward_calls: int = 0


@dataclass
class Measurement:
    """What :func:`measure` records for one implementation on one workload."""

    times: list[float] = field(default_factory=list)
    counts: PassCounts | None = None
    peak_bytes: int | None = None
    error: str | None = None

    @property
    def median(self) -> float | None:
        """Median wall time in seconds, or ``None`` when nothing was timed."""
        return statistics.median(self.times) if self.times else None


def _first_rows(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return int(value.shape[0]) if value.dim() else 1
    return 0


@contextlib.contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCounts]:
    """Count forwards of ``model`` and calls of the autograd entry points inside the block.

    A forward pre-hook on ``model`` counts calls and batch rows; ``torch.autograd.grad``,
    ``torch.autograd.backward`` and ``torch.Tensor.backward`` are wrapped for the block's
    duration. Nested calls (``Tensor.backward`` calls ``torch.autograd.backward``) count
    once. Everything is restored on exit, even after an exception.

    Parameters
    ----------
    model : torch.nn.Module
        The top module whose forwards are counted.

    Returns
    -------
    contextlib.AbstractContextManager
        Yields a :class:`PassCounts` that fills in while the block runs.
    """
    counts = PassCounts()
    depth = threading.local()

    def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        counts.forward_calls += 1
        counts.forward_rows += _first_rows(args, kwargs)

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            level = getattr(depth, "level", 0)
            if level == 0:
                counts.backward_calls += 1
            depth.level = level + 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth.level = level

        counted.__wrapped__ = fn  # type: ignore[attr-defined]
        return counted

    originals = {"grad": torch.autograd.grad, "backward": torch.autograd.backward}
    wrapped = {name: wrap(fn) for name, fn in originals.items()}
    # (owner, attribute, original, replacement), restored in reverse order.
    patches = [(torch.autograd, name, originals[name], wrapped[name]) for name in originals]
    patches.append((torch.Tensor, "backward", torch.Tensor.backward, wrap(torch.Tensor.backward)))
    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith(_ALIAS_PREFIXES):
            continue
        for name, fn in originals.items():
            if getattr(module, name, None) is fn:
                patches.append((module, name, fn, wrapped[name]))

    # ialgebra's memo keys include the user's hooks; this counter is the harness's, not
    # the model's, so it carries the mark of the library's own hooks and keeps the keys.
    pre_hook._ialgebra_hook = True  # type: ignore[attr-defined]
    handle = model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        for owner, name, _, replacement in patches:
            setattr(owner, name, replacement)
        yield counts
    finally:
        handle.remove()
        for owner, name, original, _ in reversed(patches):
            setattr(owner, name, original)


def _malloc_trim() -> None:
    # glibc keeps freed heap pages resident; returning them first makes "RSS before the
    # run" a fair baseline instead of one inflated by the previous implementation's run.
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(name).malloc_trim(0)


class PeakMemory:
    """Peak memory increase over the start of a ``with`` block.

    On CUDA, ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``,
    minus what was allocated at the start. On CPU, the peak resident set size minus the
    RSS at the start, sampled from ``/proc/self/statm`` by a background thread every
    ``interval`` seconds (so a spike shorter than that can be missed).

    Parameters
    ----------
    device : torch.device
        The device the run uses.
    interval : float
        Sampling period on CPU, in seconds.
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.peak_bytes: int | None = None
        self._base = 0
        self._max = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        assert self._fd is not None
        return int(os.pread(self._fd, 128, 0).split()[1]) * self._page

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, self._rss())

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        _malloc_trim()
        self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        self._base = self._max = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            self._max = max(self._max, self._rss())
            os.close(self._fd)
            self._fd = None
        self.peak_bytes = self._max - self._base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one call in seconds, with the device synchronised on both sides.

    Parameters
    ----------
    fn : callable
        Runs one implementation on one workload; its result is dropped.
    device : torch.device
        The device to synchronise.

    Returns
    -------
    float
    """
    gc.collect()  # collect the previous run's garbage outside the timed region
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200] + where


def measure(
    impls: dict[str, Callable[[], Any]],
    model: nn.Module,
    device: torch.device,
    repeat: int,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Measurement]:
    """Run the warm-up, timed and instrumented calls of several implementations.

    An implementation that raises is recorded with its error and left out of later
    rounds; the others go on.

    Parameters
    ----------
    impls : dict of str to callable
        Implementation name -> a function that runs the whole workload once.
    model : torch.nn.Module
        The top module whose forwards are counted.
    device : torch.device
        The device the implementations run on.
    repeat : int
        Number of timed rounds.
    log : callable
        Receives one line of progress per phase.

    Returns
    -------
    dict of str to Measurement
    """
    results = {name: Measurement() for name in impls}

    def attempt(name: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:  # one broken implementation must not stop the others
            results[name].error = _error_text(exc)
            log(f"  {name}: failed: {results[name].error}")
            return None

    def alive() -> list[str]:
        return [name for name in impls if results[name].error is None]

    log("  warm-up")
    for name in alive():
        attempt(name, lambda name=name: timed_call(impls[name], device))
    for round_ in range(repeat):
        order = alive()
        if not order:
            break
        shift = round_ % len(order)
        order = order[shift:] + order[:shift]
        log(f"  round {round_ + 1}/{repeat}: {', '.join(order)}")
        for name in order:
            elapsed = attempt(name, lambda name=name: timed_call(impls[name], device))
            if elapsed is not None:
                results[name].times.append(elapsed)
    log("  counting passes and peak memory")
    for name in alive():

        def instrumented(name: str = name) -> None:
            with count_passes(model) as counts, PeakMemory(device) as peak:
                result = impls[name]()
                _sync(device)
                del result
            results[name].counts = counts
            results[name].peak_bytes = peak.peak_bytes

        attempt(name, instrumented)
    return results
