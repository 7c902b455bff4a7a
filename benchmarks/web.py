"""The interactive page's latency: a drill-down step and a repeated query.

``python -m benchmarks.web [--repeat R] [--quick] [--json PATH] [--check] [--profile]``

On the demo's CNN (``ialgebra demo``'s models, trained once and cached; ``--quick``: the
tiny test-size CNN) and one digit (sample 0 of the clean test split), with the Shapley
identity at its default budget (25 permutations of an 8 x 8 grid of players), as the
page runs them: the text rewritten by the gesture, bound, planned (``explain``) and
computed in the tab's ``ia.Session``, and the heat map rendered to PNG.

- ``drill_down``: the full map is computed first; each timed step drags a new 16 x 16
  window onto it (every step a different window, so nothing is reused from the memo but
  the bound inputs): rewrite, submit, wait for the job to end.
- ``repeat``: the same query asked again: answered from the tab's memo.

Both are timed in process (:class:`algebra.web.server.Server`, what a request costs the
server) and over HTTP through Starlette's test client (add the page's round trips: a
rewrite, the submit and the polls). Medians over ``--repeat`` steps after two warm-ups.
Where the time of a drill-down step goes is measured beside it: the model's forward of as
many rows as the step evaluates, on its own (``--profile`` adds cProfile's top functions).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import statistics
import sys
import time
from typing import Any

import torch

import algebra as ia
from algebra.web import querying
from algebra.web.defaults import demo_catalog
from algebra.web.render import render
from algebra.web.requests import Selection, build, chunks, request_of
from algebra.web.server import Server

from . import cli

GOALS = {"drill_down": 0.300, "repeat": 0.050}  # seconds, on a 2-core CPU
BASE = "select * from f(x)"
TAB = "tab-benchmark-1"


def windows(count: int) -> list[list[int]]:
    """``count`` different 16 x 16 windows of a 32 x 32 image."""
    spots = [(r, c) for r in range(0, 17, 2) for c in range(0, 17, 2)]
    if count > len(spots):
        raise ValueError(f"--repeat: at most {len(spots) - 2} distinct windows")
    return [[r, r + 16, c, c + 16] for r, c in spots[:count]]


def body(text: str) -> dict[str, Any]:
    return {"tab": TAB, "query": text, "models": {"f": "cnn"},
            "inputs": {"x": {"data": "digits", "ids": [0]}}}  # fmt: skip


def in_process(server: Server, text: str, window: list[int] | None) -> dict[str, Any]:
    """One gesture as the server sees it: the rewrite (if any), the submit, the job."""
    if window is not None:
        text = server.rewrite({"query": text, "window": window})["query"]
    snap = querying.wait(server, TAB, querying.submit(server, body(text))["job"], timeout=600)
    if snap["state"] != "done":
        raise RuntimeError(f"{text}: {snap.get('error')}")
    return snap


def over_http(client: Any, text: str, window: list[int] | None) -> dict[str, Any]:
    """The same through HTTP, polling as the page does (its first poll after 10 ms)."""
    if window is not None:
        text = client.post("/api/rewrite", json={"query": text, "window": window}).json()["query"]
    job = client.post("/api/query", json=body(text)).json()["job"]
    delay = 0.002
    while True:
        snap = client.get(f"/api/job/{TAB}/{job}").json()
        if snap["state"] not in ("queued", "running"):
            return snap
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def forward_rows(plan: str) -> int:
    """The rows the plan evaluates (its ``total:`` line)."""
    found = re.search(r"total: \d+ forwards? \((\d+) rows\)", plan)
    return int(found.group(1)) if found else 0


def forward_time(module: torch.nn.Module, rows: int, shape: tuple[int, ...], repeat: int) -> float:
    """Median seconds of the module's forward of ``rows`` random rows, no gradients."""
    x = torch.rand(rows, *shape)
    times = []
    with torch.no_grad():
        for _ in range(repeat):
            times.append(timed(lambda: module(x))[0])
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Measure; print medians beside the goals; return 1 with ``--check`` when one is missed.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name.

    Returns
    -------
    int
    """
    parser = cli.parser("python -m benchmarks.web", None, 15, "the demo's tiny test-size CNN")
    parser.add_argument("--profile", action="store_true", help="cProfile one drill-down step")
    args = parser.parse_args(argv)
    ia.options.progress = False
    catalog = demo_catalog(quick=args.quick, models=("cnn",))
    server = Server(catalog)
    try:
        from starlette.testclient import TestClient

        from algebra.web.app import build_app

        client = TestClient(build_app(server))
    except ImportError:  # the web extra is missing: in-process figures only
        client = None
    cnn = catalog.model("cnn")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; demo CNN "
        f"({'quick' if args.quick else 'full'}), 1 image, {BASE!r} (Shapley, "
        f"{ia.options.identity}: 25 permutations x 64 players); median of {args.repeat}"
    )
    full = in_process(server, BASE, None)  # the map the drill-down starts from
    rows = forward_rows(in_process(server, BASE, [1, 17, 3, 19])["result"]["plan"])
    image = server.selections.query(Selection("digits", (0,)))
    steps = windows(2 * (args.repeat + 2))
    figures: dict[str, Any] = {"full_map_ms": full["ms"], "drill_down_rows": rows}
    # Interleaved per step, so that a busy machine slows all three alike: the page's step,
    # the engine alone on the same query (a fresh session), the model's forward alone.
    page, engine, forward = [], [], []
    for k, window in enumerate(steps[: args.repeat + 2]):
        seconds, snap = timed(lambda window=window: in_process(server, BASE, window))
        expr = ia.query(snap["text"], f=cnn, x=image)
        alone = timed(lambda expr=expr: ia.compute(expr, session=ia.Session()))[0]
        rows_only = forward_time(cnn.module, rows, (3, 32, 32), 1)
        if k >= 2:
            page.append(seconds)
            engine.append(alone)
            forward.append(rows_only)
    figures["drill_down_in_process_s"] = statistics.median(page)
    figures["drill_down_engine_s"] = statistics.median(engine)
    figures["forward_of_those_rows_s"] = statistics.median(forward)
    figures["page_over_engine"] = statistics.median(
        p / e for p, e in zip(page, engine, strict=True)
    )
    figures["forward_over_engine"] = statistics.median(
        f / e for f, e in zip(forward, engine, strict=True)
    )
    figures["repeat_in_process_s"] = statistics.median(
        [timed(lambda: in_process(server, BASE, None))[0] for _ in range(args.repeat + 2)][2:]
    )
    if client is not None:
        http = [timed(lambda w=w: over_http(client, BASE, w))[0] for w in steps[args.repeat + 2 :]]
        figures["drill_down_http_s"] = statistics.median(http[2:])
        figures["repeat_http_s"] = statistics.median(
            [timed(lambda: over_http(client, BASE, None))[0] for _ in range(args.repeat + 2)][2:]
        )
    drill, repeat = figures["drill_down_in_process_s"], figures["repeat_in_process_s"]
    print(
        f"drill-down step: median {1000 * drill:.0f} ms in process"
        + (f", {1000 * figures['drill_down_http_s']:.0f} ms over HTTP" if client else "")
        + f" (goal {1000 * GOALS['drill_down']:.0f} ms: {'PASS' if drill < GOALS['drill_down'] else 'MISS'})\n"
        f"  the engine alone (ia.compute of the same query): {1000 * figures['drill_down_engine_s']:.0f} ms; "
        f"the page's step / the engine: {figures['page_over_engine']:.2f}x\n"
        f"  the model's forward of the step's {rows} rows alone: "
        f"{1000 * figures['forward_of_those_rows_s']:.0f} ms, {100 * figures['forward_over_engine']:.0f}% of the engine's time"
    )
    print(
        f"repeated query: median {1000 * repeat:.1f} ms in process"
        + (f", {1000 * figures['repeat_http_s']:.1f} ms over HTTP" if client else "")
        + f" (goal {1000 * GOALS['repeat']:.0f} ms: {'PASS' if repeat < GOALS['repeat'] else 'MISS'})"
    )
    if args.profile:  # the job's own work, run here: a worker thread escapes cProfile
        text = server.rewrite({"query": BASE, "window": [3, 19, 1, 17]})["query"]
        request = request_of(body(text), catalog)
        (expr,) = [build(request, catalog, server.selections, c) for c in chunks(request)]
        session = server.tabs.get(TAB).session
        profile = cProfile.Profile()
        profile.enable()
        with session:
            expr.explain()
        (result,) = session.compute(expr)
        render(result, {"left": "digits"})
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(12)
        print(out.getvalue(), file=sys.stderr)
    server.close()
    cli.save(args.json, "figures", figures)
    missed = drill >= GOALS["drill_down"] or repeat >= GOALS["repeat"]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
