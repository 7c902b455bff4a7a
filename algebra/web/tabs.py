"""One ``ia.Session`` per browser tab, each with a memory bound, and a bound on the tabs.

A tab is named by an id the page draws once (kept in the tab's ``sessionStorage``). The
tab's session memoizes what its queries computed, so that a repeated query or a step of a
drill-down pays only for what is new; its history lists the queries with their timings
and cache hits. When more tabs than ``max_tabs`` are open, the least recently used one is
forgotten (its running jobs cancelled), so the memory held is at most ``max_tabs`` times
``session_bytes`` (plus the few last results each tab keeps for its pictures).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from typing import Any

import algebra as ia

from .failures import WebError
from .jobs import Job

TAB_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


class Tab:
    """A browser tab's session, jobs and history.

    Examples
    --------
    >>> tab = Tab("tab-0001", session_bytes=2**20)
    >>> tab.session.max_bytes, len(tab.history)
    (1048576, 0)
    """

    def __init__(self, tab_id: str, session_bytes: int, max_jobs: int = 8) -> None:
        self.id = tab_id
        self.session = ia.Session(session_bytes)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.history: deque[dict[str, Any]] = deque(maxlen=100)
        self.max_jobs = max_jobs
        self.lock = threading.Lock()
        self.planning = threading.Lock()  # one ``with session:`` (for explain) at a time
        self.used = time.monotonic()

    def add(self, job: Job) -> None:
        """Keep ``job``; a new query cancels the tab's query still running (one at a time),
        and only the last ``max_jobs`` jobs are kept.

        Examples
        --------
        >>> tab = Tab("tab-0001", 2**20, max_jobs=2)
        >>> a, b, c = Job("query", "a"), Job("query", "b"), Job("query", "c")
        >>> tab.add(a); tab.add(b); tab.add(c)
        >>> a.cancel.is_set(), list(tab.jobs) == [b.id, c.id]
        (True, True)
        """
        with self.lock:
            for old in self.jobs.values():
                if old.kind == job.kind and old.state in ("queued", "running"):
                    old.cancel.set()
            self.jobs[job.id] = job
            while len(self.jobs) > self.max_jobs:
                self.jobs.popitem(last=False)

    def job(self, job_id: str) -> Job:
        """The tab's job ``job_id``; a 404 when it is unknown or was dropped.

        Examples
        --------
        >>> Tab("tab-0001", 2**20).job("7")
        Traceback (most recent call last):
        algebra.web.failures.WebError: job: no job '7' in this tab (only the last 8 are kept)
        """
        with self.lock:
            if job_id not in self.jobs:
                raise WebError(
                    404,
                    f"job: no job {job_id!r} in this tab (only the last {self.max_jobs} are kept)",
                )
            return self.jobs[job_id]

    def record(self, job: Job, **extra: Any) -> None:
        """Add a finished job to the history (newest first).

        Examples
        --------
        >>> tab = Tab("tab-0001", 2**20); tab.record(Job("query", "q"), hits=1)
        >>> tab.history[0]["hits"], tab.history[0]["text"]
        (1, 'q')
        """
        entry = {"job": job.id, "kind": job.kind, "text": job.text, "state": job.state,
                 "ms": round(job.elapsed_ms, 1), **extra}  # fmt: skip
        with self.lock:
            self.history.appendleft(entry)

    def close(self) -> None:
        """Cancel the tab's running jobs and forget its memo.

        Examples
        --------
        >>> tab = Tab("tab-0001", 2**20); tab.close(); len(tab.session)
        0
        """
        with self.lock:
            for job in self.jobs.values():
                job.cancel.set()
        self.session.clear()


class Tabs:
    """The open tabs, at most ``max_tabs`` (least recently used forgotten first).

    Examples
    --------
    >>> tabs = Tabs(max_tabs=2, session_bytes=2**20)
    >>> a = tabs.get("tab-aaaa"); b = tabs.get("tab-bbbb"); c = tabs.get("tab-cccc")
    >>> sorted(tabs.ids()), tabs.get("tab-cccc") is c
    (['tab-bbbb', 'tab-cccc'], True)
    >>> tabs.get("../etc")
    Traceback (most recent call last):
    algebra.web.failures.WebError: tab: '../etc' is not a tab id (8 to 64 letters, digits, '-' or '_')
    """

    def __init__(self, max_tabs: int = 8, session_bytes: int = 128 * 2**20) -> None:
        if max_tabs < 1:
            raise ValueError(f"max_tabs: expected at least 1; got {max_tabs}")
        self.max_tabs = max_tabs
        self.session_bytes = session_bytes
        self._tabs: OrderedDict[str, Tab] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tab_id: Any) -> Tab:
        """The tab ``tab_id``, opened on first use.

        Examples
        --------
        >>> Tabs().get("tab-0001").id
        'tab-0001'
        """
        if not isinstance(tab_id, str) or not TAB_ID.match(tab_id):
            raise WebError(
                400, f"tab: {tab_id!r} is not a tab id (8 to 64 letters, digits, '-' or '_')"
            )
        dropped = []
        with self._lock:
            tab = self._tabs.get(tab_id)
            if tab is None:
                tab = self._tabs[tab_id] = Tab(tab_id, self.session_bytes)
            self._tabs.move_to_end(tab_id)
            tab.used = time.monotonic()
            while len(self._tabs) > self.max_tabs:
                dropped.append(self._tabs.popitem(last=False)[1])
        for old in dropped:
            old.close()
        return tab

    def ids(self) -> list[str]:
        """The open tabs' ids, least recently used first.

        Examples
        --------
        >>> Tabs().ids()
        []
        """
        with self._lock:
            return list(self._tabs)

    def nbytes(self) -> int:
        """Bytes held by all the tabs' memos.

        Examples
        --------
        >>> Tabs().nbytes()
        0
        """
        with self._lock:
            return sum(tab.session.nbytes for tab in self._tabs.values())
