"""``ialgebra demo`` (and ``python -m algebra.cli.demo``, what ``make demo`` runs): both
papers' case studies on scikit-learn's digits, with a report (:mod:`algebra.demo`).

It needs scikit-learn and matplotlib (``pip install 'ialgebra[demo]'``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import torch

from ..demo.models import cache_dir
from ..demo.run import check_only, check_out, run_demo
from ..demo.studies import STUDIES

DESCRIPTION = (
    "run both papers' case studies (i-Algebra: adversarial inputs, model inconsistency, "
    "contaminated data; NeuroInspect) on scikit-learn's digits and write a report; models "
    "are trained on first use and cached under $IALGEBRA_CACHE or ~/.cache/ialgebra"
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The demo's options, on ``parser`` (shared by ``ialgebra demo`` and this module).

    Examples
    --------
    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(["--only", "poisoning"])
    >>> args.only, args.out, args.quick
    (['poisoning'], 'ialgebra-demo', False)
    """
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run this study only (repeat for several): {', '.join(STUDIES)}",
    )
    parser.add_argument(
        "--out",
        default="ialgebra-demo",
        metavar="DIR",
        help="the report's folder (default ./ialgebra-demo/): index.html, figures, metrics.json",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (seconds; what the tests run)"
    )
    parser.add_argument(
        "--device", default=None, help="where to train and run (default: cuda if available)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch's CPU threads (default 1: the demo's small models run fastest on one; "
        "0 leaves torch's default)",
    )
    return parser


def execute(args: argparse.Namespace) -> int:
    """Run the demo as the parsed command line says; return the exit status.

    Bad options (an unknown study, ``--out`` naming a file, a device that is not there)
    print one message and return 2 before anything runs; errors of the run itself raise.
    Matplotlib keeps its font cache under the model cache unless ``MPLCONFIGDIR`` is set,
    so that nothing is written outside ``--out`` and the cache.

    Examples
    --------
    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(["--only", "nothing"])
    >>> execute(args)  # message on stderr
    2
    """
    try:
        only = check_only(args.only)
        device = _device(args.device)
        if args.threads < 0:
            raise ValueError(f"--threads: expected a number >= 0; got {args.threads}")
        out = check_out(args.out)
    except ValueError as error:
        print(f"ialgebra demo: error: {error}", file=sys.stderr)
        return 2
    os.environ.setdefault("MPLCONFIGDIR", str(cache_dir() / "matplotlib"))
    run_demo(out, only=only, quick=args.quick, device=device, threads=args.threads)
    return 0


def _device(name: str | None) -> torch.device | None:
    if name is None:
        return None
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: CUDA is not available on this machine; use --device cpu")
    return device


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m algebra.cli.demo [--only NAME] [--out DIR] [--quick]``; the exit status.

    Examples
    --------
    >>> main(["--only", "advesarial"])  # message on stderr
    2
    """
    parser = argparse.ArgumentParser(prog="ialgebra demo", description=DESCRIPTION)
    return execute(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
