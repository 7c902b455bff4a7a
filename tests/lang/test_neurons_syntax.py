"""The query language's NeuroInspect forms: ``select neurons [of <layer>]`` and the where term
``mistakes [of <class>]``: parsing, printing, binding to the chained Python, errors."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import algebra as ia
from algebra.lang.errors import QueryError, QuerySyntaxError
from algebra.lang.parse import parse_query
from algebra.lang.syntax import And, Column, Compare, Mistakes, Name

pytestmark = pytest.mark.usefixtures("one_thread")


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
def bound():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 3, 6, 6, generator=g), torch.randint(0, 4, (24,), generator=g)
    m = ia.model(net(), name="cnn", classes=["zero", "one", "two", "three"])
    return m, x, y


@pytest.mark.parametrize(
    ("text", "layer", "predicate"),
    [
        ("select neurons from f(x) where mistakes of 3", None, Mistakes(3)),
        ("SELECT NEURONS OF block4 FROM f(x) WHERE MISTAKES OF 'cat'", "block4", Mistakes("cat")),
        ("select neurons of 'my layer' from f(x) target 2", "my layer", None),
        ("select * from f(x) where mistakes and score > 0.5", None, And(Mistakes(), Compare(Column("score"), ">", 0.5))),
    ],
)  # fmt: skip
def test_forms_parse_and_print_back(text, layer, predicate):
    tree = parse_query(text)
    assert tree.neurons == text.lower().startswith("select neurons")
    assert (tree.layer.text if tree.layer else None) == layer
    assert tree.predicate == predicate
    assert parse_query(tree.to_text()) == tree
    assert parse_query(tree.to_text()).to_text() == tree.to_text()


def test_neurons_is_a_keyword_a_layer_named_so_is_quoted():
    tree = parse_query("select 'neurons' from f(x)")
    assert not tree.neurons and tree.layer == Name("neurons")
    assert tree.to_text() == "select 'neurons' from f(x)"


def test_top_names_a_parameter():
    tree = parse_query("select neurons from f(x) using counterfactual_neurons(TOP=3, max_steps=9)")
    assert tree.method.params == (("top", 3), ("max_steps", 9))


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("select neurons of from f(x)", "expected a layer name or a quoted string", 19),
        ("select neurons block4 from f(x)", "expected 'from' or 'of'", 16),
        ("select * from f(x) where mistakes of", "unexpected end of query; expected an integer or a quoted string", 37),
        ("select * from f(x) where mistakes of x", "expected an integer or a quoted string", 38),
        ("select * from f(x) where mistakes of -1", "expected an integer or a quoted string", 38),
        ("select * from f(x) where mistakes = 3", "expected 'and', 'or', 'of', a clause (join, using, target, where) or the end of the query", 35),
    ],
)  # fmt: skip
def test_malformed_forms_point_at_the_text(text, reason, column):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert info.value.reason == reason
    assert info.value.column == column
    assert any(line.strip() == "^" for line in str(info.value).splitlines())


def test_query_forms_equal_the_chained_python(bound):
    m, x, y = bound
    q = m.on(x, labels=y)
    cases = {
        "select neurons from f(x) where mistakes of 3": q.mistakes(3).counterfactual_neurons(3),
        "select neurons from f(x) where mistakes of 'three'": q.mistakes(3).counterfactual_neurons(
            3
        ),
        "select neurons from f(x) target 2": q.counterfactual_neurons(2),
        "select neurons of relu from f(x) using counterfactual_neurons(top=2, head='fc', "
        "max_steps=30) where score > 0.3 and mistakes of 1": q.where(ia.col.score > 0.3)
        .mistakes(1)
        .counterfactual_neurons(1, layer="relu", head="fc", top=2, max_steps=30),
        "select * from f(x) using saliency target pred where mistakes of 2": q.mistakes(2).saliency(
            "pred"
        ),
        "select * from f(x) using saliency target label where mistakes": q.mistakes().saliency(
            "label"
        ),
    }
    for text, expr in cases.items():
        assert ia.query(text, f=m, x=(x, y)).node == expr.node, text


@pytest.mark.parametrize(
    "build",
    [
        lambda q: q.mistakes(3).counterfactual_neurons(3),
        lambda q: q.counterfactual_neurons("two", top=2, lr=0.05),
        lambda q: q.layer("relu").counterfactual_neurons(1, head="fc"),
        lambda q: q.where(ia.col.id.isin([1, 2, 5])).mistakes(0).counterfactual_neurons(0),
        lambda q: q.mistakes(1).integrated_gradients("label", steps=4),
    ],
)
def test_to_query_round_trips(bound, build):
    m, x, y = bound
    expr = build(m.on(x, labels=y))
    text = expr.to_query()
    assert ia.query(text, **expr.bindings()).node == expr.node
    assert parse_query(text).to_text() == text


def test_to_query_text(bound):
    m, x, y = bound
    q = m.on(x, labels=y)
    assert q.mistakes(3).counterfactual_neurons(3, top=2).to_query() == (
        "select neurons from f(x) using counterfactual_neurons(top=2, max_steps=500, lr=0.01, "
        "l1=0.1, l2=0.01) where mistakes of 3"
    )
    assert q.layer("relu").counterfactual_neurons(1, head="fc").to_query() == (
        "select neurons of relu from f(x) using counterfactual_neurons(top=5, max_steps=500, "
        "lr=0.01, l1=0.1, l2=0.01, head='fc') target 1"
    )
    with pytest.raises(ValueError, match="an edited input"):
        q.patch((0, 2, 0, 2), 0.0).counterfactual_neurons(1).to_query()


@pytest.mark.parametrize(
    ("text", "match", "column"),
    [
        ("select neurons from f(x)", "select neurons needs the class whose mistakes it explains", 1),
        ("select neurons from f(x) where mistakes", "select neurons needs the class", 1),
        ("select neurons from f(x) target pred", "write target <class index>", 33),
        ("select neurons from f(x) using saliency target 1", "computed by counterfactual_neurons; got using 'saliency'", 32),
        ("select neurons from f(x) using counterfactual_neurons(tp=2) target 1", "unknown parameter 'tp'; it takes top, max_steps, lr, l1, l2, head. Did you mean 'top'?", 32),
        ("select neurons from f(x) target 1 where [0, 2, 0, 2]", "a window does not apply", 41),
        ("select neurons from f(x) join (select * from f(x)) target 1", "select neurons takes no joins", 26),
        ("select neurons from f(x) target 9", "cls: class 9 is out of range; the model has 4 classes", 33),
        ("select neurons from f(x) target 1 where mistakes of 2", "keeps only samples labelled 2", 33),
        ("select neurons of rel from f(x) target 1", "layer: the model has no layer 'rel'. Did you mean 'relu'?", 19),
        ("select * from f(x) where score > 0.5 and mistakes of 'four'", "cls: 'four' names no class of the model", 42),
    ],
)  # fmt: skip
def test_binding_errors_point_at_the_text(bound, text, match, column):
    m, x, y = bound
    with pytest.raises(QueryError) as info:
        ia.query(text, f=m, x=(x, y))
    assert match in str(info.value)
    assert info.value.column == column
