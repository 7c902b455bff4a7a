"""``ialgebra query "select neurons ..."``: counterfactual neurons from the command line."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia
from algebra.cli.main import main

PNG = b"\x89PNG\r\n\x1a\n"


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 6, 3, padding=1),
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(6, 4),
        )
    ).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("cli_neurons")
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(48, 3, 6, 6, generator=g), torch.randint(0, 4, (48,), generator=g)
    module = net()
    with torch.no_grad():
        wrong = module(x).argmax(1) != y
    cls = int(torch.bincount(y[wrong], minlength=4).argmax())
    torch.save(module, folder / "model.pt")
    torch.save({"inputs": x, "labels": y}, folder / "data.pt")
    with warnings.catch_warnings():  # recent torch deprecates TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(folder / "scripted.pt"))
    return folder, module, x, y, cls


def test_select_neurons_writes_the_dataset_and_the_votes(files, tmp_path: Path, capsys):
    folder, module, x, y, cls = files
    out, png = tmp_path / "neurons.nc", tmp_path / "votes.png"
    text = f"select neurons of relu from f(x) where mistakes of {cls}"
    argv = ["query", text, "--model", str(folder / "model.pt"), "--trust-pickle"]
    argv += ["--bind", f"x={folder / 'data.pt'}", "--out", str(out), "--png", str(png)]
    code = main(argv)
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert stdout.startswith("counterfactual_neurons: neuron=6, kind=2, sample=")
    assert "variables: votes, delta, flipped, steps" in stdout
    assert png.read_bytes()[:8] == PNG
    python = (
        ia.model(module).on(x, labels=y).mistakes(cls).counterfactual_neurons(cls, layer="relu")
    )
    expected = python.compute()
    with xr.open_dataset(out) as written:
        written.load()
    np.testing.assert_array_equal(written.delta.values, expected.delta.values)
    np.testing.assert_array_equal(written.votes.values, expected.votes.values)
    assert written.flipped.values.astype(bool).tolist() == expected.flipped.values.tolist()
    assert written.attrs["insufficient"].tolist() == expected.attrs["insufficient"]


def test_a_torchscript_model_is_refused_with_a_clear_message(files, capsys):
    folder, *_, cls = files
    argv = ["query", f"select neurons from f(x) target {cls}"]
    argv += ["--model", str(folder / "scripted.pt"), "--bind", f"x={folder / 'data.pt'}"]
    code = main(argv)
    stdout, stderr = capsys.readouterr()
    assert code == 2 and stdout == ""
    assert "model: the neuron stages read the decision layer through forward hooks" in stderr
    assert "Traceback" not in stderr
