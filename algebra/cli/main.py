"""The command line: ``ialgebra query`` runs a declarative query, ``ialgebra explain`` shows its
plan, ``ialgebra demo`` runs the built-in case studies (:mod:`algebra.cli.demo`) and
``ialgebra serve`` serves the interactive page (:mod:`algebra.web`).

User errors (a bad query, a missing file, an untrusted pickle, a bad binding) print one
clear message and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from ..api.bind import query
from ..api.model import model
from ..errors import did_you_mean
from ..lang.errors import QueryError
from ..lang.parse import parse_query
from ..web import command as web
from . import demo
from .loading import load_model, load_tensor
from .outputs import OutputError, all_or_nothing, check_outputs, png_path

TRUST_HELP = (
    "load a model file that would run code when loaded: a model saved with "
    "torch.save(module, path) (a Python pickle), or a torch.export (.pt2) archive that "
    "holds pickled weights, constants or objects. Pass this only for files you trust. "
    "TorchScript files and plain torch.export archives are inspected and load without it."
)

EPILOG = """examples:
  ialgebra query "select * from f(x) where [0, 16, 0, 16]" --model net.pt --bind x=images.pt \\
      --out result.nc --png heatmap.png
  ialgebra query "select * from f(x) left join (select * from f(x'))" --model net.pt \\
      --bind x=a.npz --bind "x'=b.npz"
  ialgebra explain "select conv2 from f(x) using saliency target all" --model net.pt2 --bind x=images.pt

layers can be selected in torch.export (.pt2) and pickled models, not in TorchScript.
inputs files: .pt (a tensor, or a dict with 'inputs'/'x' and optional 'labels'/'y'),
.npy, or .npz (arrays 'inputs'/'x' and optional 'labels'/'y'); labels enable 'target label'
and predicates on label and correct.
exit status: 0 on success, 2 on bad input (the message says what to change)."""


class UsageError(Exception):
    """A mistake in the command line or its files, reported without a traceback."""


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``ialgebra``.

    Examples
    --------
    >>> args = parser().parse_args(["query", "select * from f(x)", "--model", "m.pt", "--bind", "x=a.pt"])
    >>> args.command, args.model, args.bind
    ('query', ['m.pt'], ['x=a.pt'])
    """
    top = argparse.ArgumentParser(
        prog="ialgebra",
        description="Run i-Algebra queries on a PyTorch model from the command line.",
    )
    commands = top.add_subparsers(
        dest="command", required=True, metavar="{query,explain,demo,serve}"
    )
    for name, text in (
        ("query", "run a query; print a summary, write the result and a heat map"),
        ("explain", "print the plan of a query (the passes it would run), run nothing"),
    ):
        sub = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("text", metavar="QUERY", help="the query, in quotes")
        sub.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="[NAME=]PATH",
            help="a model file (TorchScript, torch.export .pt2, or a pickle with --trust-pickle); "
            "NAME= binds it to a model name of the query (optional when it uses one)",
        )
        sub.add_argument(
            "--bind",
            action="append",
            default=[],
            metavar="NAME=PATH",
            help="bind an input name of the query to a tensor file (.pt, .npy, .npz)",
        )
        sub.add_argument("--trust-pickle", action="store_true", help=TRUST_HELP)
        sub.add_argument(
            "--device", default="cpu", help="where to run: cpu (default), cuda, cuda:1, ..."
        )
        if name == "query":
            sub.add_argument("--out", metavar="RESULT.nc", help="write the result as netCDF")
            sub.add_argument(
                "--png",
                metavar="HEATMAP.png",
                help="write heat maps over the inputs (.png is added when the name has no suffix)",
            )
            sub.add_argument(
                "--force", action="store_true", help="overwrite --out and --png files that exist"
            )
    demo.add_arguments(
        commands.add_parser("demo", help=demo.DESCRIPTION, description=demo.DESCRIPTION)
    )
    web.add_parser(commands)
    return top


def _pairs(values: list[str], flag: str, names: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        if "=" not in value:
            if flag == "--model" and len(values) == 1 and len(names) == 1:
                return {names[0]: value}
            if flag == "--model":
                raise UsageError(
                    f"--model: the query uses {len(names)} models ({', '.join(names)}); name "
                    f"each file, e.g. --model {names[0] if names else 'f'}={value}"
                )
            raise UsageError(f"{flag}: expected NAME=PATH; got {value!r}")
        name, path = value.split("=", 1)
        if not path:
            raise UsageError(f"{flag}: {value!r} names no file; expected {name or 'NAME'}=PATH")
        if name not in names:
            raise UsageError(
                f"{flag}: the query has no {what} {name!r}; it uses "
                f"{', '.join(map(repr, names)) or 'none'}." + did_you_mean(name, names)
            )
        if name in out:
            raise UsageError(f"{flag}: {name!r} is bound twice")
        out[name] = path
    missing = [n for n in names if n not in out]
    if missing:
        example = f"{flag} {missing[0]}={'model.pt' if flag == '--model' else 'inputs.pt'}"
        raise UsageError(f"{flag}: no file for {', '.join(map(repr, missing))}; add {example}")
    return out


def bindings(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Parse the query and load every file it names: ``(tree, bindings)``.

    Examples
    --------
    >>> import tempfile, os, torch
    >>> folder = tempfile.mkdtemp()
    >>> net = torch.jit.script(torch.nn.Linear(4, 3))
    >>> net.save(os.path.join(folder, "m.pt")); torch.save(torch.rand(2, 4), os.path.join(folder, "x.pt"))
    >>> args = parser().parse_args(["query", "select * from f(x)", "--model", os.path.join(folder, "m.pt"),
    ...                             "--bind", "x=" + os.path.join(folder, "x.pt")])
    >>> tree, bound = bindings(args)
    >>> sorted(bound), tuple(bound["x"].shape), bound["f"].name
    (['f', 'x'], (2, 4), 'm')
    """
    tree = parse_query(args.text)
    models = _pairs(args.model, "--model", tree.model_names(), "model")
    inputs = _pairs(args.bind, "--bind", tree.input_names(), "input name")
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise UsageError(f"--device: {error}") from None
    if device.type == "meta":
        raise UsageError("--device: the meta device holds no values to run on; use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device: CUDA is not available on this machine; use --device cpu")
    bound: dict[str, Any] = {}
    for name, path in models.items():
        module = load_model(path, trust_pickle=args.trust_pickle).to(device)
        bound[name] = model(module, name=Path(path).stem)
    for name, path in inputs.items():
        x, labels = load_tensor(path)
        x = x.to(device)
        bound[name] = x if labels is None else (x, labels.to(device))
    return tree, bound


def run(args: argparse.Namespace, out: Any = None) -> None:
    """Carry out a parsed command line (see :func:`main`).

    Examples
    --------
    >>> import tempfile, os, torch
    >>> folder = tempfile.mkdtemp()
    >>> torch.jit.script(torch.nn.Linear(4, 3)).save(os.path.join(folder, "m.pt"))
    >>> torch.save(torch.rand(2, 4), os.path.join(folder, "x.pt"))
    >>> run(parser().parse_args(["explain", "select * from f(x) using saliency",
    ...     "--model", os.path.join(folder, "m.pt"), "--bind", "x=" + os.path.join(folder, "x.pt")]))
    plan: 1 expression on 1 batch of inputs
    ...
    total: 1 forward (2 rows), 1 backward
    """
    if args.command == "demo":
        demo.execute(args)
        return
    out = out or sys.stdout
    if args.command == "serve":
        web.run(args)
        return
    targets = _outputs(args)
    tree, bound = bindings(args)
    expr = query(args.text, **bound)
    if args.command == "explain":
        print(expr.explain(), file=out)
        return
    result = expr.compute()
    print(summary(result), file=out)
    with all_or_nothing(list(targets.values())):
        if "--out" in targets:
            result.ia.to_netcdf(targets["--out"])
        if "--png" in targets and isinstance(result, xr.Dataset):  # neurons: their votes
            result.ia.plot().savefig(targets["--png"])
        elif "--png" in targets:
            first = bound[tree.inputs.text]
            images = first[0] if isinstance(first, tuple) else first
            result.ia.plot(inputs=overlay(result, images)).savefig(targets["--png"])
    for path in targets.values():
        print(f"wrote {path}", file=out)


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    # Checked before anything is loaded or computed: a refused path costs nothing.
    if args.command != "query":
        return {}
    targets = {}
    if args.out:
        targets["--out"] = Path(args.out)
    if args.png:
        targets["--png"] = png_path(args.png)
    inputs = [v.split("=", 1)[-1] for v in [*args.model, *args.bind]]
    try:
        return check_outputs(targets, inputs, force=args.force)
    except OutputError as error:
        raise UsageError(str(error)) from None


def overlay(result: Any, images: Any) -> Any:
    """The images under a result's heat maps: those of its samples, when they are images.

    Examples
    --------
    >>> import xarray as xr, numpy as np, torch
    >>> r = xr.DataArray(np.ones((2, 4, 4)), dims=("sample", "y", "x"), coords={"sample": [0, 2]})
    >>> overlay(r, torch.rand(3, 1, 4, 4)).shape
    torch.Size([2, 1, 4, 4])
    >>> overlay(r.mean("sample"), torch.rand(3, 1, 4, 4)) is None
    True
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3) or "sample" not in result.dims:
        return None
    ids = result["sample"].values
    if ids.dtype.kind not in "iu" or (len(ids) and (ids.min() < 0 or ids.max() >= len(images))):
        return None  # samples named by the user: no way to find their images
    return images[ids.tolist()]


def summary(result: Any) -> str:
    """A few lines about a result: name, sizes, attributes and value range.

    Examples
    --------
    >>> import xarray as xr, numpy as np
    >>> print(summary(xr.DataArray(np.ones((2, 3)), dims=("sample", "x"), name="saliency",
    ...                            attrs={"method": "saliency"})))
    saliency: sample=2, x=3
      method: saliency
      values: min 1, max 1, mean 1
    >>> print(summary(xr.Dataset({"votes": ("neuron", np.zeros(4))}, attrs={"method": "counterfactual_neurons"})))
    counterfactual_neurons: neuron=4
      method: counterfactual_neurons
      variables: votes
    """
    sizes = ", ".join(f"{d}={n}" for d, n in result.sizes.items())
    if isinstance(result, xr.Dataset):  # counterfactual neurons: several variables
        lines = [f"{result.attrs.get('method', 'dataset')}: {sizes}"]
        lines += [f"  {k}: {v}" for k, v in result.attrs.items()]
        lines.append("  variables: " + ", ".join(map(str, result.data_vars)))
        return "\n".join(lines)
    lines = [f"{result.name}: {sizes}"]
    lines += [f"  {k}: {v}" for k, v in result.attrs.items()]
    values = result.values
    if values.size == 0:
        lines.append("  values: none (no sample passed the filter)")
    else:
        lines.append(
            f"  values: min {values.min():.4g}, max {values.max():.4g}, mean {values.mean():.4g}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ialgebra`` command; returns the exit status.

    Examples
    --------
    >>> main(["query", "select * form f(x)", "--model", "m.pt", "--bind", "x=x.pt"])  # message on stderr
    2
    """
    args = parser().parse_args(argv)
    if args.command == "demo":  # its own errors: only bad options are caught
        return demo.execute(args)
    try:
        run(args)
    except (UsageError, QueryError, ValueError, TypeError, KeyError, OSError, IndexError) as error:
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        print(f"ialgebra: error: {message}", file=sys.stderr)
        return 2
    except (RuntimeError, torch.jit.Error) as error:  # the user's model on inputs it cannot take
        print(f"ialgebra: error: the model failed on the inputs: {_cause(error)}", file=sys.stderr)
        return 2
    return 0


def _cause(error: BaseException) -> str:
    """The line of an error that says what went wrong: TorchScript's errors print the
    interpreter's traceback first and the cause last."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    named = [line for line in lines if "Error:" in line]
    return named[-1] if len(lines) > 1 and named else lines[0]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
