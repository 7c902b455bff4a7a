"""Jobs: work started by a request and run on a worker thread, which the page polls.

A job reports its phase and how many of its steps are done; a cancel is honoured between
steps (a query's chunks of samples, a NeuroInspect stage's parts), never by killing a
thread, so the engine always finishes what it started and leaves the models as they were.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .failures import Cancelled, error_payload

_ids = itertools.count(1)


@dataclass
class Job:
    """One piece of work of a tab: its state, progress, and what it produced.

    ``state`` goes ``queued`` -> ``running`` -> ``done``, ``error`` or ``cancelled``.

    Examples
    --------
    >>> job = Job("query", "select * from f(x)")
    >>> job.step("compute", 1, 4); job.snapshot()["progress"]
    {'phase': 'compute', 'done': 1, 'total': 4}
    >>> job.cancel.set(); job.check()
    Traceback (most recent call last):
    algebra.web.failures.Cancelled: cancelled
    """

    kind: str
    text: str
    id: str = field(default_factory=lambda: str(next(_ids)))
    state: str = "queued"
    phase: str = "queued"
    done: int = 0
    total: int = 0
    created: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    payload: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    pngs: list[bytes] = field(default_factory=list)
    kept: Any = None  # the result itself (for the figure download)
    cancel: threading.Event = field(default_factory=threading.Event)

    def step(self, phase: str, done: int | None = None, total: int | None = None) -> None:
        """Report progress: the phase, and steps done out of a total.

        Examples
        --------
        >>> j = Job("query", ""); j.step("render"); j.phase
        'render'
        """
        self.phase = phase
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total

    def check(self) -> None:
        """Raise :class:`Cancelled` when the job was cancelled (called between steps).

        Examples
        --------
        >>> Job("query", "").check() is None
        True
        """
        if self.cancel.is_set():
            raise Cancelled("cancelled")

    @property
    def elapsed_ms(self) -> float:
        """Milliseconds from the request to the end (or to now, while it runs)."""
        end = self.finished if self.finished is not None else time.perf_counter()
        return 1000 * (end - self.created)

    def snapshot(self) -> dict[str, Any]:
        """The job as JSON for the page.

        Examples
        --------
        >>> Job("query", "q").snapshot()["state"]
        'queued'
        """
        out: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "text": self.text, "state": self.state,
            "progress": {"phase": self.phase, "done": self.done, "total": self.total},
            "ms": round(self.elapsed_ms, 1),
        }  # fmt: skip
        if self.payload is not None:
            out["result"] = self.payload
        if self.error is not None:
            out["error"] = self.error
        return out


class Runner:
    """Worker threads for jobs (``workers`` at a time; more wait in a queue).

    Examples
    --------
    >>> runner = Runner(1)
    >>> job = Job("sum", "1 + 1")
    >>> runner.submit(job, lambda j: {"value": 2}).result()
    >>> job.state, job.payload
    ('done', {'value': 2})
    >>> bad = Job("parse", "int('x')")
    >>> runner.submit(bad, lambda j: {"value": int("x")}).result()
    >>> bad.state, bad.error["message"]
    ('error', "invalid literal for int() with base 10: 'x'")
    >>> runner.close()
    """

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ialgebra-job")

    def submit(
        self,
        job: Job,
        work: Callable[[Job], dict[str, Any]],
        done: Callable[[Job], None] | None = None,
    ) -> Future:
        """Run ``work(job)`` on a worker; its dict becomes ``job.payload``, its error
        ``job.error``; ``done(job)`` is called at the end, whatever happened.

        Examples
        --------
        >>> r = Runner(1); j = Job("x", ""); j.cancel.set()
        >>> r.submit(j, lambda job: job.check() or {}).result(); j.state
        'cancelled'
        >>> r.close()
        """

        def run() -> None:
            try:
                job.check()
                job.state = "running"
                job.payload = work(job)
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"
            except Exception as error:  # any failure is a message to the page
                job.error = error_payload(error)
                job.state = "error"
            finally:
                job.finished = time.perf_counter()
                if done is not None:
                    done(job)

        return self._pool.submit(run)

    def close(self) -> None:
        """Stop taking jobs; wait for those running.

        Examples
        --------
        >>> Runner(1).close()
        """
        self._pool.shutdown(wait=True, cancel_futures=True)
