"""Command line: ``python -m benchmarks [--workloads NAMES] [--repeat R] [--quick] ...``."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from .report import check_targets, format_targets, format_workload, write_json
from .runner import run_workload
from .scaleout import format_scaleout, run_scaleout
from .verify import verify
from .workloads import WORKLOADS, ScaleOut, Workload, select

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time ialgebra against Captum's sequential calls and a hand-fused "
        "torch floor on named workloads; print a table and write JSON.",
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        metavar="NAMES",
        help=f"workloads to run, space- or comma-separated (default: all of {', '.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, metavar="R", help="timed rounds after one warm-up"
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="default: cuda when available, else cpu",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, metavar="PATH", help="results file"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 if any target is not met"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="only check that floor, Captum and ours agree (at --quick sizes), then exit",
    )
    parser.add_argument("--verbose", action="store_true", help="print ours' plan per workload")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat: expected an integer >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.workloads:
        args.workloads = [n for item in args.workloads for n in item.split(",") if n]
        try:
            select(args.workloads)
        except ValueError as exc:
            parser.error(f"--workloads: {exc}")
    return args


def _log(line: str) -> None:
    # Progress goes to stderr so stdout holds only the tables.
    print(line, file=sys.stderr, flush=True)


def _meta(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    try:
        import captum

        captum_version = captum.__version__
    except ImportError:
        captum_version = None
    try:
        import algebra

        ours_version = algebra.__version__
    except Exception:  # ours may be mid-rewrite; the Captum and floor runs go on
        ours_version = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": name or platform.machine(),
        "cpu_count": os.cpu_count(),
        # Other processes competing for the cores make every timing noisier.
        "load_average_1min": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "captum": captum_version,
        "ialgebra": ours_version,
        "repeat": args.repeat,
        "quick": args.quick,
        "argv": sys.argv[1:],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks (or ``--verify``); return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name.

    Returns
    -------
    int
        0, or 1 when ``--verify`` found a disagreement or ``--check`` a missed target.
    """
    args = parse_args(argv)
    # Captum's notice that it switched on requires_grad for the inputs we hand it.
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.verify:
        chosen = [w for w in select(args.workloads, quick=True) if isinstance(w, Workload)]
        ok = verify(chosen, device, log=print)
        print("verify: all agree" if ok else "verify: DISAGREEMENT (see FAIL lines)")
        return 0 if ok else 1

    workloads = select(args.workloads, quick=args.quick)
    meta = _meta(args, device)
    print(
        f"device {meta['device']} ({meta['device_name']}, {meta['torch_threads']} threads), "
        f"torch {meta['torch']}, captum {meta['captum']}, median of {args.repeat} runs"
        + (", QUICK sizes" if args.quick else "")
    )
    if meta["load_average_1min"] >= (meta["cpu_count"] or 1):
        print(f"warning: load average {meta['load_average_1min']:.1f}: timings will be noisy")
    print(
        "attr/s = attribution maps (samples x targets, summed over the requests) per second; "
        "fwd/bwd = calls\n"
    )
    results = []
    for workload in workloads:
        _log(f"== {workload.name}")
        if isinstance(workload, ScaleOut):
            result = run_scaleout(workload, device, args.repeat, log=_log)
            text = format_scaleout(result)
        else:
            result = run_workload(workload, device, args.repeat, log=_log, verbose=args.verbose)
            text = format_workload(result)
        results.append(result)
        print(text + "\n", flush=True)
    checked = check_targets(results, device.type)
    if checked:
        print("targets" + (" (at --quick sizes)" if args.quick else "") + ":")
        print(format_targets(checked))
    write_json(args.json, {"meta": meta, "workloads": results, "targets": checked})
    print(f"wrote {args.json}")
    if args.check and any(t["status"] != "PASS" for t in checked):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
