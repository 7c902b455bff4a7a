"""Small, seeded models and inputs shared by the tests."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia


class CountingForward(nn.Module):
    """Wraps a model and counts forward calls and the rows they evaluated.

    The counts live in a dict: plain attributes (numbers) are part of a model's state
    token, so counting in them would make every computation change the model.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.train(net.training)
        self.counts = {"calls": 0, "rows": 0}

    calls = property(
        lambda self: self.counts["calls"],
        lambda self, value: self.counts.__setitem__("calls", value),
    )
    rows = property(
        lambda self: self.counts["rows"],
        lambda self, value: self.counts.__setitem__("rows", value),
    )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counts["calls"] += 1
        self.counts["rows"] += x.shape[0]
        return self.net(x)


def make_cnn(classes: int = 5) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 4, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(4, 6, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(2),
            flat=nn.Flatten(),
            fc=nn.Linear(24, classes),
        )
    ).eval()


def make_mlp(classes: int = 4) -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(6, 16), act=nn.Tanh(), fc2=nn.Linear(16, classes))
    ).eval()


@pytest.fixture
def cnn() -> nn.Sequential:
    return make_cnn()


@pytest.fixture
def mlp() -> nn.Sequential:
    return make_mlp()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def features() -> torch.Tensor:
    return torch.randn(5, 6, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def counting() -> type[CountingForward]:
    """The counting wrapper class (conftest is not importable under importlib mode)."""
    return CountingForward


@pytest.fixture
def cnn_factory():
    """Builds a fresh, seeded CNN each call."""
    return make_cnn


def assert_reduced_close(
    got: xr.DataArray, expected: xr.DataArray, magnitude: xr.DataArray
) -> None:
    """Results of reductions agree to float32 rounding of what was reduced.

    Sums taken in a different order differ in proportion to the sum of the absolute values
    reduced (cancellation), not to the result: ``magnitude`` is that sum (the same
    reduction of ``abs`` of the inputs), elementwise. Dims and coordinates must match.
    """
    got, expected, magnitude = xr.align(got, expected, magnitude, join="exact")
    assert got.dims == expected.dims
    xr.testing.assert_allclose(got.coords.to_dataset(), expected.coords.to_dataset())
    error = np.abs(got.values.astype(np.float64) - expected.values.astype(np.float64))
    bound = 1e-5 * np.abs(magnitude.values.astype(np.float64)) + 1e-8
    worst = float(np.max(error - bound)) if error.size else 0.0
    assert worst <= 0, f"reductions differ beyond float32 rounding: worst excess {worst:g}"


@pytest.fixture
def reduced_close():
    """:func:`assert_reduced_close`: compare reductions with a tolerance scaled to what is
    reduced (conftest is not importable under importlib mode)."""
    return assert_reduced_close


def assert_captum_parity(ours: object, theirs: torch.Tensor) -> None:
    """Our result (a DataArray or tensor) equals Captum's within 1e-5, both float32.

    The absolute slack is scaled to the result's magnitude: a bare 1e-5 would be vacuous
    on tiny values; an all-zero reference is refused as degenerate.
    """
    ours = ours if isinstance(ours, torch.Tensor) else torch.from_numpy(np.asarray(ours.values))
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    assert ours.dtype == torch.float32 and theirs.dtype == torch.float32
    atol = 1e-5 * float(theirs.abs().max())
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=atol)


@pytest.fixture
def captum_parity():
    """:func:`assert_captum_parity`, shared by the Captum parity tests."""
    return assert_captum_parity


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (small convolutions run several times faster than
    with threads fighting over a shared machine); the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def spurious_digits():
    """The spurious-mark digits task (class 8) and its model with the shortcut, seed 0:
    built once per session (about 5 s on one thread) and shared by the evidence tests,
    which must leave the model as they found it."""
    from algebra.demo import data as dd

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is several times faster
    try:
        task = dd.spurious_task(cls=8, seed=0)
        return task, dd.spurious_model(task, seed=0)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """One temporary model cache (``IALGEBRA_CACHE``) for the whole session, doctests
    included: the demo's quick models are trained once, and nothing goes to ~/.cache."""
    folder = tmp_path_factory.mktemp("ialgebra-cache")
    before = os.environ.get("IALGEBRA_CACHE")
    os.environ["IALGEBRA_CACHE"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("IALGEBRA_CACHE", None)
        else:
            os.environ["IALGEBRA_CACHE"] = before


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """``run_demo(quick=True)`` of the studies other than adversarial (which ``cli_demo``
    runs), once per session: the report's folder and what the run returned."""
    from algebra.demo.run import run_demo

    out = tmp_path_factory.mktemp("demo")
    stream = io.StringIO()
    with ia.set_options(progress=False):
        report = run_demo(
            out, only=["inconsistency", "poisoning", "neuroinspect"], quick=True, stream=stream
        )
    return report, stream.getvalue()


@pytest.fixture(scope="session")
def cli_demo(tmp_path_factory, model_cache):
    """``python -m algebra demo --only adversarial --quick --out OUT`` in a fresh process
    whose home and working folder are empty temporary folders (so that a test can check
    that nothing was written outside OUT and the cache): ``(completed process, root)``,
    with ``root / "out"``, ``root / "home"`` and ``root / "cwd"``."""
    root = tmp_path_factory.mktemp("cli-demo")
    for name in ("home", "cwd"):
        (root / name).mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(root / "home"), IALGEBRA_CACHE=str(model_cache))
    done = subprocess.run(
        [sys.executable, "-m", "algebra", "demo", "--only", "adversarial", "--quick",
         "--out", str(root / "out")],
        cwd=root / "cwd", env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done, root


def assert_parity64(ours: object, theirs: torch.Tensor) -> None:
    """Equal to Captum's result within ``rtol=1e-5`` and an ``atol`` of ``1e-5`` times its
    largest magnitude (float64 models keep the comparison tight); all-zero references are
    refused as degenerate."""
    ours = ours if isinstance(ours, torch.Tensor) else torch.from_numpy(np.asarray(ours.values))
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    atol = 1e-5 * float(theirs.abs().max())
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-5, atol=atol)


@pytest.fixture
def parity64():
    """:func:`assert_parity64`, shared by the gradient family's Captum parity tests."""
    return assert_parity64


def make_cnn64(classes: int = 5) -> nn.Sequential:
    """A float64 CNN whose ReLUs and max pooling are kept apart by a convolution (Captum's
    DeepLift hooks lose completeness where two of its rules touch)."""
    torch.manual_seed(0)
    return (
        nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 4, 3, padding=1),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(4, 6, 3, padding=1),
                pool=nn.MaxPool2d(2),
                conv3=nn.Conv2d(6, 6, 3, padding=1),
                relu3=nn.ReLU(),
                flat=nn.Flatten(),
                fc=nn.Linear(96, classes),
            )
        )
        .double()
        .eval()
    )


@pytest.fixture
def cnn64() -> nn.Sequential:
    return make_cnn64()


@pytest.fixture
def images64() -> torch.Tensor:
    return torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


@pytest.fixture
def mlp64() -> nn.Sequential:
    torch.manual_seed(1)
    return (
        nn.Sequential(OrderedDict(fc1=nn.Linear(6, 16), act=nn.Tanh(), fc2=nn.Linear(16, 4)))
        .double()
        .eval()
    )


@pytest.fixture
def features64() -> torch.Tensor:
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def untouched(net: nn.Module) -> None:
    """The model carries no hook, mode, gradient or changed flag after a computation."""
    assert torch._C._len_torch_function_stack() == 0
    for name, m in net.named_modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks), name
    for p in net.parameters():
        assert p.requires_grad and p.grad is None
    assert not net.training


@pytest.fixture
def assert_untouched():
    """:func:`untouched`: the model comes back unmodified."""
    return untouched


def explain_totals(plan: str) -> tuple[int, int, int]:
    """``(forwards, rows, backwards)`` of an ``explain()`` text's total line."""
    forwards, rows, backwards = re.search(
        r"total: (\d+) forwards? \((\d+) rows\), (?:at most )?(\d+) backward", plan
    ).groups()
    return int(forwards), int(rows), int(backwards)


@pytest.fixture
def passes(monkeypatch):
    """``passes(counted, exprs, backward="batched")``: compute ``exprs`` in a fresh session
    and return the results, the counted ``(forwards, rows, backwards)`` of the wrapped
    model (:class:`CountingForward`) and the totals ``explain()`` printed for them, with
    ``ia.options.backward = backward`` (one batched backward per fused group by default,
    so counts do not depend on the device)."""
    calls = {"n": 0}
    original = torch.autograd.grad

    def counted_grad(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counted_grad)

    def run(
        counted: CountingForward, exprs: list, backward: str = "batched"
    ) -> tuple[list, tuple, tuple]:
        with ia.set_options(backward=backward):
            plan = ia.explain(*exprs)
            counted.calls = counted.rows = 0
            calls["n"] = 0
            results = ia.compute(*exprs, session=ia.Session())
        return list(results), (counted.calls, counted.rows, calls["n"]), explain_totals(plan)

    return run
