"""Where ``ialgebra query`` writes: never over its inputs or an existing file without
``--force``, the path it reports is the one written, and a failure leaves nothing behind."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from algebra.cli.main import main

TEXT = "select * from f(x) using saliency"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("outputs")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 3)
    ).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(folder / "model.pt"))
    torch.save(torch.rand(2, 3, 8, 8), folder / "x.pt")
    return {"model": folder / "model.pt", "x": folder / "x.pt"}


def _run(capsys, files, *extra: str) -> tuple[int, str, str]:
    code = main(
        ["query", TEXT, "--model", str(files["model"]), "--bind", f"x={files['x']}", *extra]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_out_equal_to_an_input_is_refused_and_the_input_kept(files, capsys):
    before = files["x"].read_bytes()
    code, _, err = _run(capsys, files, "--out", str(files["x"]), "--force")
    assert code == 2 and "--out" in err and "is an input of this command" in err
    assert files["x"].read_bytes() == before


def test_existing_outputs_need_force(files, capsys, tmp_path):
    out = tmp_path / "r.nc"
    out.write_text("keep me")
    code, _, err = _run(capsys, files, "--out", str(out))
    assert code == 2 and "exists; pass --force" in err and out.read_text() == "keep me"
    code, stdout, err = _run(capsys, files, "--out", str(out), "--force")
    assert code == 0, err
    assert f"wrote {out}" in stdout and out.read_bytes()[:3] == b"CDF"


def test_png_without_a_suffix_reports_the_file_it_wrote(files, capsys, tmp_path):
    code, stdout, err = _run(capsys, files, "--png", str(tmp_path / "heat"))
    assert code == 0, err
    assert (tmp_path / "heat.png").exists() and f"wrote {tmp_path / 'heat.png'}" in stdout


def test_png_naming_a_directory_is_refused(files, capsys, tmp_path):
    code, _, err = _run(capsys, files, "--png", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_out_and_png_on_the_same_path_are_refused(files, capsys, tmp_path):
    same = str(tmp_path / "both.png")
    code, _, err = _run(capsys, files, "--out", same, "--png", same)
    assert code == 2 and "is also the --out file" in err
    assert not (tmp_path / "both.png").exists()


def test_a_failed_png_leaves_no_netcdf_behind(files, capsys, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    out = tmp_path / "r.nc"
    code, stdout, err = _run(capsys, files, "--out", str(out), "--png", str(tmp_path / "h.png"))
    assert code == 2 and "disk full" in err
    assert not out.exists() and "wrote" not in stdout


def test_device_meta_and_an_empty_binding_are_usage_errors(files, capsys):
    code, _, err = _run(capsys, files, "--device", "meta")
    assert (
        code == 2 and "--device: the meta device holds no values" in err and "Traceback" not in err
    )
    code = main(["query", TEXT, "--model", str(files["model"]), "--bind", "x="])
    err = capsys.readouterr().err
    assert code == 2 and "--bind: 'x=' names no file; expected x=PATH" in err


def test_a_torchscript_failure_names_its_cause(capsys, tmp_path):
    class Strict(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] != 5:
                raise RuntimeError("expected 5 features")
            return x

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Strict().eval()).save(str(tmp_path / "strict.pt"))
    torch.save(torch.rand(2, 3), tmp_path / "x.pt")
    code = main(
        ["query", TEXT, "--model", str(tmp_path / "strict.pt"), "--bind", f"x={tmp_path / 'x.pt'}"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "expected 5 features" in err
