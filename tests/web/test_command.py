"""``ialgebra serve``: arguments, the warning off loopback, files through the safe loaders."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the page needs the web extra: pip install 'ialgebra[web]'")

import torch

from algebra.cli.main import main
from algebra.web import command


@pytest.fixture
def served(monkeypatch, catalog):
    calls = []
    monkeypatch.setattr(command, "catalog_of", lambda args: catalog)
    monkeypatch.setattr(command, "serve", lambda server, host, port: calls.append((host, port)))
    return calls


def test_serve_binds_to_loopback_by_default_without_a_warning(served, capsys):
    assert main(["serve"]) == 0
    assert served == [("127.0.0.1", 8765)]
    err = capsys.readouterr().err
    assert "serving on http://127.0.0.1:8765/" in err and "warning" not in err


def test_another_host_warns_that_the_page_has_no_login(served, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert served == [("0.0.0.0", 9000)]
    assert "it has no login" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--port", "0"], "--port: expected 1 to 65535"),
        (["serve", "--max-tabs", "0"], "--max-tabs"),
    ],
)
def test_bad_arguments_are_usage_errors(served, capsys, argv, says):
    assert main(argv) == 2
    assert says in capsys.readouterr().err and not served


def test_model_files_load_safely_and_pickles_are_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(command, "serve", lambda server, host, port: None)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    torch.save(net, tmp_path / "pickled.pt")
    torch.save({"x": torch.rand(4, 1, 4, 4), "y": torch.tensor([0, 1, 2, 0])}, tmp_path / "d.pt")
    argv = ["serve", "--model", f"net={tmp_path}/pickled.pt", "--data", f"d={tmp_path}/d.pt"]
    assert main(argv) == 2
    err = capsys.readouterr().err  # the loader's refusal: nothing was unpickled
    assert "is a pickled module" in err and "ialgebra serve loads no pickles" in err
    torch.jit.script(net).save(tmp_path / "net.pt")
    args = command.add_parser(__import__("argparse").ArgumentParser().add_subparsers()).parse_args(
        ["--model", f"net={tmp_path}/net.pt", "--data", f"d={tmp_path}/d.pt"]
    )
    catalog = command.catalog_of(args)
    assert list(catalog.models) == ["net"] and catalog.dataset("d").labels.tolist() == [0, 1, 2, 0]
