"""``expr.compute`` takes the same keywords as ``ia.compute``."""

from __future__ import annotations

import inspect

import torch

import algebra as ia


def test_expr_compute_takes_the_same_keywords_as_ia_compute():
    keywords = [p for p in inspect.signature(ia.compute).parameters if p != "exprs"]
    assert list(inspect.signature(ia.Expr.compute).parameters)[1:] == keywords


def test_expr_compute_uses_the_session_given(mlp, features):
    e = ia.model(mlp).on(features).saliency(0)
    s, default = ia.Session(), ia.session()
    before = (default.hits, default.misses, len(default))
    first = e.compute(session=s)
    again = e.compute(session=s)
    assert (s.hits, s.misses, len(s)) == (1, 1, 1)
    assert again is first  # the memoized result
    assert (default.hits, default.misses, len(default)) == before  # the default was not used
    torch.testing.assert_close(torch.from_numpy(first.values), torch.from_numpy(again.values))
