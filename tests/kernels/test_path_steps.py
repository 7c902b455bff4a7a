"""Integration rules: fast and cached at large sizes, and a clear error beyond what is built."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import algebra as ia
from algebra.kernels import paths
from algebra.kernels.execute import execute
from algebra.kernels.path_steps import MAX_STEPS, check_path_steps
from algebra.kernels.paths import alphas_and_weights, gauss_legendre
from algebra.kernels.plan import (
    Group,
    Job,
    Output,
    PathSpec,
    Points,
    Request,
    TargetSpec,
)


@pytest.mark.parametrize("n", [129, 700, 2000])
def test_large_gauss_legendre_rules_are_exact_on_polynomials(n, monkeypatch):
    # numpy's eigenvalue-based leggauss (15 s at n = 2000) is not used at these sizes.
    def refuse(_n):
        raise AssertionError("leggauss called")

    monkeypatch.setattr(np.polynomial.legendre, "leggauss", refuse)
    x, w = gauss_legendre(n)
    assert x.shape == w.shape == (n,)
    assert np.all(np.diff(x) > 0) and np.all(w > 0)
    np.testing.assert_allclose(x, -x[::-1], atol=0)
    for k in (0, 2, 10, 40):  # exact up to degree 2n - 1: the even moments of [-1, 1]
        assert abs((w * x**k).sum() - 2 / (k + 1)) < 1e-13
    assert abs((w * np.cos(3 * x)).sum() - 2 * np.sin(3) / 3) < 1e-13


def test_small_rules_are_numpys_to_the_last_bit():
    for n in (1, 2, 7, 50, 128):
        x, w = gauss_legendre(n)
        ref_x, ref_w = np.polynomial.legendre.leggauss(n)
        assert np.array_equal(x, ref_x) and np.array_equal(w, ref_w)


def test_rules_are_built_once(monkeypatch):
    calls = []
    original = paths.gauss_legendre
    monkeypatch.setattr(paths, "gauss_legendre", lambda n: calls.append(n) or original(n))
    paths._rule.cache_clear()
    first = alphas_and_weights("gausslegendre", 333)
    second = alphas_and_weights("gausslegendre", 333)
    assert first == second and calls == [333]
    second[0].append(5.0)  # callers get their own lists
    assert alphas_and_weights("gausslegendre", 333) == first


@pytest.mark.parametrize(
    "steps", [10**100, 10**5000, MAX_STEPS["gausslegendre"] + 1], ids=["1e100", "1e5000", "cap"]
)
def test_steps_beyond_the_rule_are_a_value_error_naming_steps(steps):
    with pytest.raises(ValueError, match=r"^steps: .* is more than the 10000 steps"):
        check_path_steps(steps, "gausslegendre")
    with pytest.raises(ValueError, match=r"^steps: "):
        alphas_and_weights("gausslegendre", steps)
    assert check_path_steps(MAX_STEPS["riemann_left"], "riemann_left") == 1_000_000
    with pytest.raises(ValueError, match=r"^steps: .* riemann_left"):
        check_path_steps(MAX_STEPS["riemann_left"] + 1, "riemann_left")


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "8", None])
def test_steps_must_be_a_positive_integer(bad):
    with pytest.raises((ValueError, TypeError), match=r"^steps: "):
        check_path_steps(bad, "riemann_middle")
    assert check_path_steps(np.int64(8), "riemann_middle") == 8


def test_a_huge_step_count_fails_clearly_at_compute(mlp, features):
    # The kernels refuse it themselves, whatever the caller checked.
    path = PathSpec(10**100, "gausslegendre", 0.0, "0.0")
    job = Job(
        mlp,
        features,
        groups=[
            Group(Points("inputs")),
            Group(Points("path", path), [Request("r", TargetSpec("index", 0))]),
        ],
        results=[Output("ig", "r", "integrated")],
    )
    with pytest.raises(ValueError, match=r"^steps: about 10\^100"):
        execute(job)
    with pytest.raises(ValueError, match="steps"):
        ia.model(mlp).on(features).integrated_gradients(0, steps=10**100).compute()
    assert torch.is_grad_enabled()
