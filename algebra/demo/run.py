"""Run the demo's studies and write the report: ``index.html`` with its PNG figures,
``metrics.json`` with every key figure, and the key figures as a table in the terminal.

Nothing is written outside ``out`` and the model cache.
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch

from ..config import options, set_options
from ..errors import did_you_mean
from .context import Context
from .report import Study, Table, terminal, write_html
from .studies import STUDIES

TITLE = "ialgebra demo: interpretation as queries"


@dataclass
class Report:
    """What a run made: its studies, the report's files and the run's timings."""

    studies: list[Study]
    index: Path
    metrics: Path
    seconds: float
    context: Context


def check_only(only: Sequence[str] | None) -> list[str]:
    """The studies to run, in the report's order: all of them, or those named.

    Examples
    --------
    >>> check_only(None)
    ['adversarial', 'inconsistency', 'poisoning', 'neuroinspect']
    >>> check_only(["neuroinspect", "adversarial"])
    ['adversarial', 'neuroinspect']
    >>> check_only(["poison"])
    Traceback (most recent call last):
    ValueError: --only: no study 'poison'; the studies are adversarial, inconsistency, poisoning, neuroinspect. Did you mean 'poisoning'?
    """
    if not only:
        return list(STUDIES)
    for name in only:
        if name not in STUDIES:
            raise ValueError(
                f"--only: no study {name!r}; the studies are {', '.join(STUDIES)}."
                + did_you_mean(name, STUDIES)
            )
    return [name for name in STUDIES if name in only]


def check_out(out: str | Path) -> Path:
    """The report's folder: created if missing; an existing file there is refused.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_out(folder / "report").is_dir()
    True
    >>> (folder / "file").write_text("x") and None
    >>> check_out(folder / "file")
    Traceback (most recent call last):
    ValueError: --out: .../file is a file; expected a folder for the report (it is created if missing)
    """
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"--out: {path} is a file; expected a folder for the report (it is created if missing)"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU.

    Examples
    --------
    >>> default_device().type in ("cpu", "cuda")
    True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch on ``threads`` CPU threads inside the block (0: unchanged); restored after.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads: expected a whole number >= 0; got {threads!r}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


CPU_BUDGET = 128 * 2**20


def budget(device: torch.device) -> int | None:
    """The memory budget of the run: ``ia.options.memory_budget`` when set; else, on the
    CPU, 128 MiB.

    The default budget (from the free memory) makes chunks of hundreds of MiB, and on the
    CPU every chunk's fresh buffers are mapped and zeroed page by page: on the demo's full
    run that was 7.5 million page faults, as much system time as computing time. Chunks of
    128 MiB reuse their memory (3 million faults, system time down from 19 s to 8 s, the
    run about 40 % faster) and still hold every pass whole.

    Examples
    --------
    >>> import algebra as ia
    >>> budget(torch.device("cpu")) == 128 * 2**20, budget(torch.device("cuda")) is None
    (True, True)
    >>> with ia.set_options(memory_budget=2**30):
    ...     budget(torch.device("cpu"))
    1073741824
    """
    if options.memory_budget is not None or device.type != "cpu":
        return options.memory_budget
    return CPU_BUDGET


def run_demo(
    out: str | Path = "ialgebra-demo",
    only: Sequence[str] | None = None,
    quick: bool = False,
    device: str | torch.device | None = None,
    cache: Path | None = None,
    stream: TextIO | None = None,
    threads: int = 1,
) -> Report:
    """Run the studies (all, or ``only`` those named) and write the report into ``out``.

    Parameters
    ----------
    out : path, default "ialgebra-demo"
        The report's folder: ``index.html``, the PNG figures and ``metrics.json``.
    only : list of str, optional
        Study names (see :data:`algebra.demo.studies.STUDIES`).
    quick : bool, default False
        Tiny sizes (seconds; what the tests run); the figures mean little.
    device : str or torch.device, optional
        Where models train and run (default: the GPU when there is one).
    cache : path, optional
        Where trained models are kept (default ``$IALGEBRA_CACHE`` or ``~/.cache/ialgebra``).
    stream : text file, optional
        Where progress lines and the table of key figures go (default ``sys.stdout``).
    threads : int, default 1
        Torch's CPU threads during the run (0: leave torch's setting). The demo's models
        are small: one thread ran them 5 to 30 times faster than two on a 2-core machine
        shared with other work, where threads wait for each other.

    Returns
    -------
    Report

    Examples
    --------
    >>> import io, tempfile, algebra as ia
    >>> folder = Path(tempfile.mkdtemp())
    >>> with ia.set_options(progress=False):  # models from the cache ($IALGEBRA_CACHE)
    ...     report = run_demo(folder, only=["inconsistency"], quick=True, stream=io.StringIO())
    >>> report.index.name, [s.name for s in report.studies]
    ('index.html', ['inconsistency'])
    >>> sorted(json.loads(report.metrics.read_text()))
    ['models', 'seconds', 'studies']
    """
    names = check_only(only)
    folder = check_out(out)
    stream = stream or sys.stdout
    device = default_device() if device is None else torch.device(device)
    ctx = Context(quick=quick, device=device, cache=cache)
    start = time.perf_counter()
    studies = []
    with torch_threads(threads), set_options(memory_budget=budget(device)):
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] {name} ...", file=stream, flush=True)
            began = time.perf_counter()
            with ctx.stage(name, STUDIES[name].STEPS):
                study = STUDIES[name].run(ctx, folder)
            study.seconds = time.perf_counter() - began
            studies.append(study)
            print(f"[{i}/{len(names)}] {name}: {study.seconds:.1f} s", file=stream, flush=True)
    seconds = time.perf_counter() - start
    runs = timings(ctx, studies, seconds)
    index = write_html(studies, folder, TITLE, preface(ctx, names), runs)
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps(as_json(ctx, studies, seconds), indent=1), encoding="utf-8")
    print("\n" + terminal(studies), file=stream)
    made = ", ".join(
        f"{t.recipe.name} {'loaded' if t.cached else 'trained'} {t.seconds:.1f} s"
        for t in ctx.models
    )
    print(f"\nmodels: {made}", file=stream)
    print(f"\n{len(names)} studies in {seconds:.1f} s; report: {index}", file=stream, flush=True)
    return Report(studies, index, metrics, seconds, ctx)


def preface(ctx: Context, names: Sequence[str]) -> str:
    """The report's opening paragraph: what ran, on what, and how to run it again.

    Examples
    --------
    >>> print(preface(Context(quick=True), ["adversarial"]))  # doctest: +ELLIPSIS
    Both papers' case studies ... Run: ialgebra demo --quick --only adversarial (...).
    """
    command = "ialgebra demo" + (" --quick" if ctx.quick else "")
    if len(names) < len(STUDIES):
        command += "".join(f" --only {n}" for n in names)
    mode = "quick sizes: the figures mean little" if ctx.quick else "full sizes"
    return (
        "Both papers' case studies (i-Algebra: adversarial inputs, model inconsistency, "
        "contaminated data; NeuroInspect: from a class's mistakes to the neurons behind them "
        "and an edited decision layer) on scikit-learn's digits, upsampled to 32 x 32. "
        "Every figure shows the code or query that made it. "
        f"Run: {command} ({mode}; {ctx.device.type}, torch {torch.__version__}, "
        f"Python {platform.python_version()})."
    )


def timings(ctx: Context, studies: Sequence[Study], seconds: float) -> Table:
    """The run's timings: each model (trained or loaded from the cache) and each study.

    Examples
    --------
    >>> t = timings(Context(), [Study("x", "X", "", seconds=2.0)], 2.5)
    >>> t.rows
    [['study', 'x', '2.0'], ['total', '', '2.5']]
    """
    rows = [
        ["model", f"{t.recipe.name} ({'from the cache' if t.cached else 'trained'})",
         f"{t.seconds:.1f}"]
        for t in ctx.models
    ]  # fmt: skip
    rows += [["study", s.name, f"{s.seconds:.1f}"] for s in studies]
    rows.append(["total", "", f"{seconds:.1f}"])
    return Table("Timings (seconds; studies include their models)", ["step", "what", "s"], rows)


def as_json(ctx: Context, studies: Sequence[Study], seconds: float) -> dict:
    """Every key figure by study, the models and the timings, for ``metrics.json``.

    Examples
    --------
    >>> s = Study("x", "X", "", seconds=1.0)
    >>> s.metric("AUC", 0.75)
    >>> as_json(Context(quick=True), [s], 1.5)["studies"]["x"]
    {'seconds': 1.0, 'metrics': {'AUC': {'value': 0.75, 'text': '0.750', 'note': ''}}}
    """
    return {
        "seconds": seconds,
        "models": [
            {"name": t.recipe.name, "cached": t.cached, "seconds": t.seconds} for t in ctx.models
        ],
        "studies": {
            s.name: {
                "seconds": s.seconds,
                "metrics": {
                    m.name: {"value": m.value, "text": m.text, "note": m.note} for m in s.metrics
                },
            }
            for s in studies
        },
    }
