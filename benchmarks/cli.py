"""What the stand-alone benchmarks share on the command line: the common options, progress
lines on stderr and the JSON record of the figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def parser(
    prog: str, workloads: list[str] | None, repeat: int, quick: str
) -> argparse.ArgumentParser:
    """An argument parser with ``--repeat``, ``--quick``, ``--json``, ``--check`` and, when
    ``workloads`` are named, ``--workloads`` (all of them by default).

    Examples
    --------
    >>> args = parser("bench", ["a", "b"], 3, "tiny sizes").parse_args(["--quick"])
    >>> args.workloads, args.repeat, args.quick, args.check
    ('a,b', 3, True, False)
    """
    p = argparse.ArgumentParser(prog=prog)
    if workloads is not None:
        p.add_argument("--workloads", default=",".join(workloads), help="comma-separated names")
    p.add_argument("--repeat", type=int, default=repeat, help="timed rounds after a warm-up")
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    return p


def log(line: str) -> None:
    """A progress line, on stderr (the figures go to stdout).

    Examples
    --------
    >>> log("== warm-up")
    """
    print(line, file=sys.stderr, flush=True)


def save(path: Path | None, key: str, figures: Any) -> None:
    """Write ``{"argv": ..., key: figures}`` to ``path`` as JSON, when a path is given.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "f.json"
    >>> save(out, "workloads", [{"name": "a"}]); json.loads(out.read_text())["workloads"]
    [{'name': 'a'}]
    """
    if path is not None:
        path.write_text(json.dumps({"argv": sys.argv[1:], key: figures}, indent=2))
