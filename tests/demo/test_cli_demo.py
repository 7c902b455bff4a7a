"""``ialgebra demo`` through the command line: the adversarial study in quick mode in a
fresh process (the ``cli_demo`` fixture), and the options it refuses."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from algebra.cli.main import main

FIGURES = {
    "adversarial_maps",
    "adversarial_layers",
    "adversarial_divergence",
    "adversarial_detector",
}


def test_the_command_runs_the_study_and_writes_the_report(cli_demo):
    done, root = cli_demo
    assert done.returncode == 0, done.stderr[-2000:]
    out = root / "out"
    assert {p.stem for p in out.glob("*.png")} == FIGURES
    page = (out / "index.html").read_text()
    for name in FIGURES:  # each figure is shown, with a caption and its code
        figure = re.search(rf"<figure><img src='{name}.png'.*?</figure>", page, re.S)
        assert figure and "<figcaption>" in figure[0] and "<pre><code>" in figure[0], name
    assert "ialgebra demo --quick --only adversarial" in page
    metrics = json.loads((out / "metrics.json").read_text())["studies"]["adversarial"]["metrics"]
    assert all(math.isfinite(m["value"]) for m in metrics.values())
    # the key figures as a table in the terminal
    assert re.search(r"adversarial\s+detector ROC AUC, held out\s+\d\.\d{3}", done.stdout)
    assert f"report: {out / 'index.html'}" in done.stdout


def test_the_command_writes_nothing_outside_out_and_the_cache(cli_demo, model_cache):
    done, root = cli_demo
    assert done.returncode == 0, done.stderr[-2000:]
    written = {p.relative_to(root).parts[0] for p in root.rglob("*") if p.is_file()}
    assert written == {"out"}  # the empty home and working folders stay empty
    assert list((model_cache / "models").glob("cnn-*.pt"))


def test_the_command_shows_progress(cli_demo):
    done, _ = cli_demo
    assert re.search(r"adversarial: .*step", done.stderr)  # the study's bar (tqdm, on stderr)
    assert "[1/1] adversarial: " in done.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--only", "poison"], "--only: no study 'poison'; the studies are adversarial, "
         "inconsistency, poisoning, neuroinspect. Did you mean 'poisoning'?"),
        (["--threads", "-1"], "--threads: expected a number >= 0; got -1"),
        (["--device", "cuda:7"] , "--device: CUDA is not available"),
        (["--device", "gpu"], "--device: "),
    ],
)  # fmt: skip
def test_bad_options_are_refused_before_anything_runs(argv, message, tmp_path, capsys):
    if "cuda:7" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["demo", *argv, "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ialgebra demo: error: " + message), err
    assert not (tmp_path / "report").exists()


def test_out_must_not_be_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ialgebra demo: error: --out: {tmp_path / 'taken'} is a file"), err
