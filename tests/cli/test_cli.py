"""The ``ialgebra`` command: queries on model and tensor files, and one-line user errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia
from algebra.cli.loading import load_model, load_tensor
from algebra.cli.main import main

LABELS = [0, 1, 2, 3]
PNG = b"\x89PNG\r\n\x1a\n"


def _net(seed: int = 0) -> nn.Sequential:
    """conftest's cnn (a module fixture cannot use conftest's function-scoped ones)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 4, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(4, 6, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(2),
            flat=nn.Flatten(),
            fc=nn.Linear(24, 5),
        )
    ).eval()


class Files:
    """Paths of the model and tensor files, and the tensors written to them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.net = _net()
        self.x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
        self.x2 = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
        self.labels = torch.tensor(LABELS)
        self.model = folder / "model.pt"
        self.other = folder / "other.pt"
        with warnings.catch_warnings():  # recent torch deprecates TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(self.net).save(str(self.model))
            torch.jit.script(_net(seed=1)).save(str(self.other))
        self.pickled = folder / "pickled.pt"
        torch.save(self.net, self.pickled)
        self.state_dict = folder / "weights.pt"
        torch.save(self.net.state_dict(), self.state_dict)
        self.garbage = folder / "garbage.pt"
        self.garbage.write_bytes(b"this is not a model file\n" * 4)
        self.tensor = folder / "inputs.pt"
        torch.save(self.x, self.tensor)
        self.labelled = folder / "labelled.pt"
        torch.save({"inputs": self.x, "labels": self.labels}, self.labelled)
        self.npy = folder / "inputs.npy"
        np.save(self.npy, self.x.numpy())
        self.npz = folder / "other.npz"
        np.savez(self.npz, x=self.x2.numpy(), y=np.array(LABELS))

    def path(self, name: str) -> str:
        return str(getattr(self, name))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("cli"))


def digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def expected(text: str, model_path: Path, **inputs: Path) -> xr.DataArray:
    """``ia.query(text).compute()`` in Python, on the same files."""
    bound: dict = {"f": load_model(model_path, trust_pickle=True)}
    for name, path in inputs.items():
        x, y = load_tensor(path)
        bound[name] = x if y is None else (x, y)
    return ia.query(text, **bound).compute()


# --- queries that run ---------------------------------------------------------------------


def test_query_writes_netcdf_and_png(files: Files, tmp_path: Path, capsys):
    text = (
        "select * from f(x) join (select * from f(x2)) using saliency target top 2 "
        "where id in (0, 1, 3)"
    )
    out, png = tmp_path / "result.nc", tmp_path / "heatmap.png"
    before = digest(files.model)
    code, stdout, stderr = run(
        capsys,
        "query",
        text,
        "--model",
        files.path("model"),
        "--bind",
        f"x={files.labelled}",
        "--bind",
        f"x2={files.npz}",
        "--out",
        str(out),
        "--png",
        str(png),
    )
    assert code == 0, stderr
    assert stderr == ""
    assert stdout.startswith("join: sample=3, target=2, channel=3, y=8, x=8")
    assert "method: saliency" in stdout and "values: min" in stdout
    assert f"wrote {out}" in stdout and f"wrote {png}" in stdout
    assert png.read_bytes()[:8] == PNG
    with xr.open_dataarray(out) as written:
        written.load()
    python = expected(text, files.model, x=files.labelled, x2=files.npz)
    xr.testing.assert_allclose(written, python)
    assert written.sample.values.tolist() == [0, 1, 3]
    assert written.label.values.tolist() == [0, 1, 3]
    assert written.attrs["method"] == "saliency"
    assert digest(files.model) == before  # the user's model file is left alone


@pytest.mark.parametrize(
    ("inputs", "target"),
    [("tensor", "pred"), ("labelled", "label"), ("npy", "pred"), ("npz", "label")],
)
def test_input_formats(files: Files, tmp_path: Path, capsys, inputs: str, target: str):
    text = f"select * from f(x) using input_x_gradient target {target}"
    out = tmp_path / "r.nc"
    code, stdout, stderr = run(
        capsys,
        "query",
        text,
        "--model",
        f"f={files.model}",
        "--bind",
        f"x={files.path(inputs)}",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    assert stdout.startswith("input_x_gradient: sample=4")
    with xr.open_dataarray(out) as written:
        written.load()
    xr.testing.assert_allclose(written, expected(text, files.model, x=getattr(files, inputs)))
    source = files.x2 if inputs == "npz" else files.x
    direct = ia.model(files.net).on(source, labels=LABELS).input_x_gradient(target).compute()
    np.testing.assert_allclose(written.values, direct.values, rtol=1e-4, atol=1e-6)
    if target == "label":
        assert written.label.values.tolist() == LABELS


def test_torch_export_archive(files: Files, tmp_path: Path, capsys):
    archive = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(files.net, (files.x,)), str(archive))
    before = digest(archive)
    text = "select conv2 from f(x) using saliency target label where not correct"
    out = tmp_path / "r.nc"
    code, stdout, stderr = run(
        capsys,
        "query",
        text,
        "--model",
        str(archive),
        "--bind",
        f"x={files.labelled}",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    assert "layer: conv2" in stdout
    with xr.open_dataarray(out) as written:
        written.load()
    python = ia.query(text, f=files.net, x=(files.x, files.labels)).compute()
    xr.testing.assert_allclose(written, python)
    assert digest(archive) == before


def test_pickled_module_needs_trust(files: Files, capsys):
    before = digest(files.pickled)
    argv = ["query", "select conv1 from f(x) using saliency", "--model", files.path("pickled")]
    argv += ["--bind", f"x={files.tensor}"]
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2 and stdout == ""
    assert stderr.startswith("ialgebra: error: ")
    assert "--trust-pickle" in stderr and "runs code" in stderr
    assert "Traceback" not in stderr
    code, stdout, stderr = run(capsys, *argv, "--trust-pickle")
    assert code == 0, stderr
    assert stdout.startswith("saliency: sample=4, channel=4, y=8, x=8")
    assert "model: pickled" in stdout
    assert digest(files.pickled) == before


def test_two_named_models_and_a_primed_input(files: Files, capsys):
    code, stdout, stderr = run(
        capsys,
        "query",
        "select * from f(x) left join (select * from g(x)) using saliency",
        "--model",
        f"f={files.model}",
        "--model",
        f"g={files.other}",
        "--bind",
        f"x={files.tensor}",
    )
    assert code == 0, stderr
    assert "model: model - other" in stdout
    code, stdout, stderr = run(
        capsys,
        "query",
        "select * from f(x) left join (select * from f(x')) using integrated_gradients(steps=8)",
        "--model",
        files.path("model"),
        "--bind",
        f"x={files.tensor}",
        "--bind",
        f"x'={files.npz}",
    )
    assert code == 0, stderr
    assert stdout.startswith("integrated_gradients: side=2, sample=4")


def test_explain_prints_the_plan(files: Files, capsys):
    code, stdout, stderr = run(
        capsys,
        "explain",
        "select * from f(x) join (select * from f(x2)) using saliency target all",
        "--model",
        files.path("model"),
        "--bind",
        f"x={files.tensor}",
        "--bind",
        f"x2={files.npy}",
    )
    assert code == 0, stderr
    assert stdout.startswith("plan: ")
    total = [line for line in stdout.splitlines() if line.startswith("total:")]
    assert len(total) == 1 and "forward" in total[0]


# --- user errors: exit status 2, one message, no traceback ---------------------------------


def _args(files: Files, tmp: Path, case: str) -> tuple[list[str], list[str]]:
    """The command line of an error case and words its message must contain."""
    model, tensor = files.path("model"), f"x={files.tensor}"
    query = "select * from f(x) using saliency"
    cases: dict[str, tuple[list[str], list[str]]] = {
        "missing model file": (
            [query, "--model", str(tmp / "nope.pt"), "--bind", tensor],
            ["no such file", "nope.pt"],
        ),
        "missing inputs file": (
            [query, "--model", model, "--bind", f"x={tmp / 'nope.npy'}"],
            ["no such file", "nope.npy"],
        ),
        "syntax error": (
            ["select * form f(x)", "--model", model, "--bind", tensor],
            ["expected 'from'", "line 1, column 10", "select * form f(x)", "\n           ^"],
        ),
        "unknown layer": (
            [
                "select conv3 from f(x)",
                "--model",
                files.path("pickled"),
                "--trust-pickle",
                "--bind",
                tensor,
            ],
            ["no layer 'conv3'", "Did you mean 'conv2'", "^"],
        ),
        "unknown method": (
            ["select * from f(x) using saliancy", "--model", model, "--bind", tensor],
            ["'saliancy'", "Did you mean 'saliency'", "^"],
        ),
        "unknown binding name": (
            [query, "--model", model, "--bind", tensor, "--bind", f"x2={files.npy}"],
            ["--bind", "no input name 'x2'", "'x'"],
        ),
        "unknown model name": (
            [query, "--model", f"g={model}", "--bind", tensor],
            ["--model", "no model 'g'", "'f'"],
        ),
        "bind without a name": (
            [query, "--model", model, "--bind", str(files.tensor)],
            ["--bind", "NAME=PATH"],
        ),
        "missing bind": (
            [
                "select * from f(x) join (select * from f(x2))",
                "--model",
                model,
                "--bind",
                tensor,
            ],
            ["--bind", "'x2'"],
        ),
        "unnamed model of two": (
            [
                "select * from f(x) left join (select * from g(x))",
                "--model",
                model,
                "--bind",
                tensor,
            ],
            ["--model", "2 models", "f=", model],
        ),
        "bad device": (
            [query, "--model", model, "--bind", tensor, "--device", "bogus"],
            ["--device", "bogus"],
        ),
        "garbage model": (
            [query, "--model", files.path("garbage"), "--bind", tensor],
            ["not a model file", "garbage.pt"],
        ),
        "state_dict": (
            [query, "--model", files.path("state_dict"), "--bind", tensor],
            ["state_dict", "no architecture", "conv1.weight"],
        ),
        "tensor file as model": (
            [query, "--model", files.path("tensor"), "--bind", tensor],
            ["inputs.pt", "not a torch.nn.Module"],
        ),
        "model file as inputs": (
            [query, "--model", model, "--bind", f"x={model}"],
            ["holds a model", "not tensors"],
        ),
        "layer of a TorchScript model": (
            ["select conv1 from f(x)", "--model", model, "--bind", tensor],
            ["TorchScript", "layer"],
        ),
    }
    argv, words = cases[case]
    return ["query", *argv], words


ERROR_CASES = [
    "missing model file",
    "missing inputs file",
    "syntax error",
    "unknown layer",
    "unknown method",
    "unknown binding name",
    "unknown model name",
    "bind without a name",
    "missing bind",
    "unnamed model of two",
    "bad device",
    "garbage model",
    "state_dict",
    "tensor file as model",
    "model file as inputs",
    "layer of a TorchScript model",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_user_errors(files: Files, tmp_path: Path, capsys, case: str):
    before = digest(files.model)
    argv, words = _args(files, tmp_path, case)
    code, stdout, stderr = run(capsys, *argv)
    assert code == 2
    assert stdout == ""
    assert stderr.startswith("ialgebra: error: ")
    assert stderr.count("ialgebra: error:") == 1
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 4  # the message, and a query line with its caret
    for word in words:
        assert word in stderr, (word, stderr)
    assert digest(files.model) == before


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["query"],
        ["query", "--model", "m.pt"],
        ["run", "select * from f(x)"],
        ["explain", "select * from f(x)", "--out", "r.nc"],
    ],
)
def test_argparse_errors_exit_2(capsys, argv: list[str]):
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: ialgebra" in err and "Traceback" not in err


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["query", "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    assert "--trust-pickle" in out and "--bind" in out


def _console_script() -> list[str]:
    beside = Path(sys.executable).parent / ("ialgebra.exe" if os.name == "nt" else "ialgebra")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("ialgebra")
    return [found] if found else [sys.executable, "-m", "algebra"]


def test_console_script_reports_user_errors_without_traceback(files: Files):
    done = subprocess.run(
        [
            *_console_script(),
            "query",
            "select * from f(x) where lable = 3",
            "--model",
            files.path("model"),
            "--bind",
            f"x={files.tensor}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("ialgebra: error: query: unknown column 'lable'")
    assert "Did you mean 'label'?" in done.stderr
    assert "^" in done.stderr
    assert "Traceback" not in done.stderr


# --- edge cases: empty results, inputs the model cannot take ---------------------------


def test_query_that_keeps_no_samples(files: Files, tmp_path: Path, capsys):
    out = tmp_path / "empty.nc"
    code, stdout, stderr = run(
        capsys,
        "query",
        "select * from f(x) using saliency where id in (99)",
        "--model",
        files.path("model"),
        "--bind",
        f"x={files.tensor}",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    assert stdout.startswith("saliency: sample=0, channel=3, y=8, x=8")
    assert out.exists()


def test_inputs_that_do_not_fit_the_model(files: Files, tmp_path: Path, capsys):
    flat = tmp_path / "flat.pt"
    torch.save(torch.rand(4, 6), flat)
    code, _, stderr = run(
        capsys,
        "query",
        "select * from f(x) using saliency",
        "--model",
        files.path("model"),
        "--bind",
        f"x={flat}",
    )
    assert code == 2
    assert stderr.startswith("ialgebra: error: ") and "Traceback" not in stderr
