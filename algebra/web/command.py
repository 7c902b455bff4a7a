"""``ialgebra serve``: the interactive page on this machine.

With no files it serves the demo's models and data sets (trained on first use, then
cached); ``--model NAME=FILE`` and ``--data NAME=FILE`` serve others, loaded with the same
safe loaders as ``ialgebra query`` (no pickle). It answers on 127.0.0.1 unless ``--host``
says otherwise, and then warns that the page has no login.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any, TextIO

from .app import missing_extra, serve
from .catalog import Catalog, from_files
from .defaults import demo_catalog, demo_data
from .server import Server, Settings

EPILOG = """examples:
  ialgebra serve                                   # the demo's models and data
  ialgebra serve --model net=net.pt2 --data test=images.npz --port 9000

model files: TorchScript or torch.export (.pt2); data files: .pt (weights_only), .npy, .npz
(inputs 'x'/'inputs' and labels 'y'/'labels'). Nothing is ever loaded from the page."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``ialgebra`` command's sub-commands.

    Examples
    --------
    >>> top = argparse.ArgumentParser(prog="ialgebra")
    >>> sub = add_parser(top.add_subparsers(dest="command"))
    >>> args = top.parse_args(["serve", "--port", "9000"])
    >>> args.port, args.host, args.model
    (9000, '127.0.0.1', [])
    """
    text = "serve the interactive page (queries, heat maps, drill-down, NeuroInspect)"
    sub = commands.add_parser(
        "serve", help=text, description=text, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub.add_argument("--model", action="append", default=[], metavar="NAME=FILE",
                     help="a model to serve (TorchScript or torch.export .pt2); repeatable")  # fmt: skip
    sub.add_argument("--data", action="append", default=[], metavar="NAME=FILE",
                     help="a data set to serve (.pt, .npy, .npz); repeatable")  # fmt: skip
    sub.add_argument("--port", type=int, default=8765, help="the port (default 8765)")
    sub.add_argument("--host", default="127.0.0.1",
                     help="the address to listen on (default 127.0.0.1, this machine only)")  # fmt: skip
    sub.add_argument("--quick", action="store_true",
                     help="the demo's tiny models (seconds to train), as the tests use")  # fmt: skip
    sub.add_argument("--max-tabs", type=int, default=8, metavar="N",
                     help="browser tabs with a session at once (default 8)")  # fmt: skip
    sub.add_argument("--tab-memory", type=int, default=128, metavar="MB",
                     help="memory bound of each tab's memo, in MiB (default 128)")  # fmt: skip
    return sub


def loopback(host: str) -> bool:
    """Whether ``host`` names this machine only.

    Examples
    --------
    >>> loopback("127.0.0.1"), loopback("localhost"), loopback("::1"), loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def catalog_of(args: argparse.Namespace) -> Catalog:
    """The models and data sets the arguments name, the demo's where none are named.

    Examples
    --------
    >>> import tempfile, os, torch
    >>> folder = tempfile.mkdtemp()
    >>> torch.jit.script(torch.nn.Linear(4, 3)).save(os.path.join(folder, "m.pt"))
    >>> torch.save(torch.rand(5, 4), os.path.join(folder, "d.pt"))
    >>> args = argparse.Namespace(model=[f"lin={folder}/m.pt"], data=[f"d={folder}/d.pt"], quick=False)
    >>> sorted(catalog_of(args).models), sorted(catalog_of(args).data)
    (['lin'], ['d'])
    """
    models, data = from_files(args.model, args.data)
    if not models:
        demo = demo_catalog(quick=args.quick)
        demo.data.update(data)
        return demo
    return Catalog(models, data or demo_data())


def run(args: argparse.Namespace, err: TextIO | None = None) -> None:  # pragma: no cover
    """Carry out ``ialgebra serve``: load, warn when the page is reachable from other
    machines, and serve until interrupted.

    Examples
    --------
    >>> callable(run)  # it blocks while serving; tests drive the app instead
    True
    """
    err = err or sys.stderr
    reason = missing_extra()
    if reason:
        raise ValueError(reason)
    if not 0 < args.port < 65536:
        raise ValueError(f"--port: expected 1 to 65535; got {args.port}")
    if args.max_tabs < 1 or args.tab_memory < 1:
        raise ValueError("--max-tabs, --tab-memory: expected integers >= 1")
    if not loopback(args.host):
        print(
            f"ialgebra: warning: serving on {args.host}: anyone who can reach this address "
            "can use the page and run queries on this machine; it has no login",
            file=err,
        )
    settings = Settings(max_tabs=args.max_tabs, session_bytes=args.tab_memory * 2**20)
    server = Server(catalog_of(args), settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"ialgebra: serving on http://{shown}:{args.port}/ (Ctrl+C to stop)", file=err)
    serve(server, args.host, args.port)
