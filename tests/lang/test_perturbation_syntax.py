"""The query language and the perturbation methods: players and window sizes as parameter
values, their errors, and every method in ``using`` bound and printed back."""

from __future__ import annotations

import pytest
import torch

import algebra as ia
from algebra.lang.parse import parse_query
from algebra.lang.syntax import Call, Method, Name, param_text


@pytest.mark.parametrize(
    "text, params",
    [
        (
            "shapley(groups=grid(4, 4), samples=10)",
            (("groups", Call("grid", (4, 4))), ("samples", 10)),
        ),
        ("lime(groups=PATCHES(2))", (("groups", Call("patches", (2,))),)),
        ("occlusion(size=[3, 4, 4], stride=[3,2,2])", (("size", (3, 4, 4)), ("stride", (3, 2, 2)))),
        ("shapley(samples='exact', antithetic=true)", (("samples", "exact"), ("antithetic", True))),
    ],
)
def test_parameters_parse_and_print_back(text, params):
    method = parse_query(f"select * from f(x) using {text}").method
    assert method.params == params
    again = parse_query(f"select * from f(x) using {method.to_text()}").method
    assert again == method


def test_param_text():
    assert param_text((1,)) == "[1]"
    assert Method(Name("occlusion"), (("size", 2), ("stride", (1, 2)))).to_text() == (
        "occlusion(size=2, stride=[1, 2])"
    )


@pytest.mark.parametrize(
    "text, reason, column",
    [
        ("select * from f(x) using shapley(groups=grd(4, 4))", "unknown players 'grd'", 41),
        ("select * from f(x) using shapley(groups=grid)", "grid needs its arguments", 41),
        ("select * from f(x) using shapley(groups=x)", "expected a number, a quoted string", 41),
        ("select * from f(x) using occlusion(size=[])", "expected an integer", 42),
        ("select * from f(x) using shapley(groups=grid(4.5, 2))", "expected ',' or ')'", 47),
    ],
)
def test_syntax_errors(text, reason, column):
    with pytest.raises(ia.QuerySyntaxError) as info:
        parse_query(text)
    assert reason in str(info.value)
    assert f"column {column}" in str(info.value)


@pytest.fixture
def bound(cnn, images):
    return {"f": cnn, "x": images}, ia.model(cnn).on(images)


@pytest.mark.parametrize(
    "text, build",
    [
        (
            "shapley(groups=grid(2, 2), samples=3, seed=1)",
            lambda q: q.shapley("pred", ia.grid(2, 2), 3, seed=1),
        ),
        (
            "kernel_shap(samples=20, baseline=0.5)",
            lambda q: q.kernel_shap("pred", samples=20, baseline=0.5),
        ),
        (
            "lime(groups=patches(4), kernel_width=0.5)",
            lambda q: q.lime("pred", ia.patches(4), kernel_width=0.5),
        ),
        ("occlusion(size=[3, 4, 4], stride=2)", lambda q: q.occlusion("pred", (3, 4, 4), 2)),
        ("feature_ablation", lambda q: q.feature_ablation("pred")),
        ("feature_permutation(seed=3)", lambda q: q.feature_permutation("pred", seed=3)),
    ],
)
def test_every_method_binds_in_using(bound, text, build):
    names, q = bound
    e = ia.query(f"select * from f(x) using {text}", **names)
    assert e.node == build(q).node
    assert ia.query(e.to_query(), **e.bindings()).node == e.node


def test_select_star_is_the_papers_identity(bound):
    names, q = bound
    e = ia.query("select * from f(x) where [0, 4, 0, 4]", **names)
    assert e.node == q.window(0, 4, 0, 4).shapley("pred").node
    assert e.to_query() == (
        "select * from f(x) using shapley(samples=25, baseline=0.0, antithetic=false) "
        "target pred where [0, 4, 0, 4]"
    )


def test_binding_errors_point_at_the_method(bound):
    names, _ = bound
    with pytest.raises(ia.QueryError, match=r"groups: grid\(...\) takes rows, cols"):
        ia.query("select * from f(x) using shapley(groups=grid(2))", **names)
    with pytest.raises(ia.QueryError, match=r"groups: patches\(9\) does not fit"):
        ia.query("select * from f(x) using shapley(groups=patches(9))", **names)
    with pytest.raises(ia.QueryError, match="samples: expected an integer >= 1"):
        ia.query("select * from f(x) using kernel_shap(samples=0)", **names)


def test_tensor_parameters_have_no_text(bound):
    _, q = bound
    with pytest.raises(ValueError, match="to_query: a tensor or query parameter \\(groups\\)"):
        q.shapley(0, groups=torch.zeros(8, 8, dtype=torch.long)).to_query()
    with pytest.raises(ValueError, match="to_query: the metric deletion has no form"):
        q.shapley(0).deletion().to_query()
