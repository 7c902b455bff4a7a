"""``ia.query``: query text bound to models and inputs is the expression chained Python builds.

Also ``Expr.to_query`` / ``Expr.bindings``: expressions built in Python print back as query
text that rebuilds them, and expressions the language cannot express say so.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia

col = ia.col
LABELS = [0, 1, 2, 3]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_l3_net() -> nn.Sequential:
    """A small CNN with a layer named ``l3`` (any H x W input, 5 classes)."""
    torch.manual_seed(4)
    return nn.Sequential(
        OrderedDict(
            l1=nn.Conv2d(3, 4, 3, padding=1),
            l2=nn.ReLU(),
            l3=nn.Conv2d(4, 4, 3, padding=1),
            l4=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(2),
            flat=nn.Flatten(),
            fc=nn.Linear(16, 5),
        )
    ).eval()


def make_other_cnn() -> nn.Sequential:
    """A second model with the same input and output shapes as conftest's ``cnn``."""
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 5)
    ).eval()


@pytest.fixture
def others() -> tuple[torch.Tensor, torch.Tensor]:
    """Two more batches shaped like conftest's ``images`` ([4, 3, 8, 8])."""
    return torch.rand(4, 3, 8, 8, generator=_gen(11)), torch.rand(4, 3, 8, 8, generator=_gen(12))


def same(expr: ia.Expr, python: ia.Expr) -> None:
    """Structurally equal, and equal values once computed."""
    assert expr.node == python.node
    xr.testing.assert_allclose(expr.compute(), python.compute())


# --- the prototype's five queries, exactly as written ------------------------------------


def test_prototype_window(cnn: nn.Sequential):
    x = torch.rand(2, 3, 32, 48, generator=_gen(7))
    m = ia.model(cnn)
    e = ia.query("select * from f(x) where [16, 20, 20, 40]", f=m, x=x)
    python = m.on(x).window(16, 20, 20, 40).identity("pred")
    same(e, python)
    r = e.compute()
    outside = r.where((r.y < 16) | (r.y >= 20) | (r.x < 20) | (r.x >= 40), 0.0)
    assert float(abs(outside).max()) == 0.0
    assert float(abs(r).max()) > 0.0


def test_prototype_layer(images: torch.Tensor):
    net = make_l3_net()
    e = ia.query("select l3 from f(x)", f=net, x=images)
    python = ia.model(net).on(images).layer("l3").identity("pred")
    same(e, python)
    assert e.compute().attrs["layer"] == "l3"


def test_prototype_join(cnn: nn.Sequential, images: torch.Tensor, others):
    other, _ = others
    m = ia.model(cnn)
    e = ia.query("select * from f(x) join (select * from f(x'))", f=m, x=images, **{"x'": other})
    python = m.on(images).identity("pred").join(m.on(other).identity("pred"))
    same(e, python)


def test_prototype_left_join(cnn: nn.Sequential, images: torch.Tensor, others):
    other, _ = others
    m = ia.model(cnn)
    e = ia.query(
        "select * from f(x) left join (select * from f(x'))", f=m, x=images, **{"x'": other}
    )
    python = m.on(images).antijoin(m.on(other), "pred")
    same(e, python)
    assert e.compute().side.values.tolist() == ["left", "right"]


def test_prototype_nested_joins(cnn: nn.Sequential, images: torch.Tensor, others):
    x2, x3 = others
    m = ia.model(cnn)
    e = ia.query(
        "select * from f(x1) join (select * from f(x2) join (select * from f(x3)))",
        f=m,
        x1=images,
        x2=x2,
        x3=x3,
    )
    e1, e2, e3 = (m.on(x).identity("pred") for x in (images, x2, x3))
    same(e, e1.join(e2.join(e3)))
    assert e.node != e1.join(e2).join(e3).node  # the nesting is kept, not flattened


# --- clauses ------------------------------------------------------------------------------


@pytest.fixture
def q(cnn: nn.Sequential, images: torch.Tensor):
    """``(model, query on images with labels)``."""
    m = ia.model(cnn)
    return m, m.on(images, labels=LABELS)


@pytest.mark.parametrize(
    ("text", "build"),
    [
        ("select * from f(x) using saliency", lambda q: q.saliency("pred")),
        ("select * from f(x) using saliency(abs=false)", lambda q: q.saliency("pred", abs=False)),
        (
            "select * from f(x) using input_x_gradient target all",
            lambda q: q.input_x_gradient("all"),
        ),
        (
            "select * from f(x) using integrated_gradients(steps=8)",
            lambda q: q.integrated_gradients("pred", steps=8),
        ),
        (
            "select * from f(x) using integrated_gradients(steps=8, method='riemann_left', "
            "baseline=0.5) target label",
            lambda q: q.integrated_gradients("label", steps=8, method="riemann_left", baseline=0.5),
        ),
        (
            "select conv2 from f(x) using grad_cam(relu=false, upsample=false) target 2",
            lambda q: q.layer("conv2").grad_cam(2, relu=False, upsample=False),
        ),
        (
            "select relu1 from f(x) using saliency target top 3",
            lambda q: q.layer("relu1").saliency(ia.topk(3)),
        ),
        ("select * from f(x) using saliency target 4", lambda q: q.saliency(4)),
        ("select * from f(x) using saliency target label", lambda q: q.saliency("label")),
        ("select * from f(x) using saliency target pred", lambda q: q.saliency("pred")),
        (
            "select conv1 from f(x) using saliency where [0, 4, 2, 6]",
            lambda q: q.layer("conv1").window(0, 4, 2, 6).saliency("pred"),
        ),
        (
            "select * from f(x) using saliency where [0, 6, 0, 6] and [1, 3, 2, 5]",
            lambda q: q.window(0, 6, 0, 6).window(1, 3, 2, 5).saliency("pred"),
        ),
        (
            "select * from f(x) using saliency where pred != label",
            lambda q: q.saliency("pred").where(col.pred != col.label),
        ),
        (
            "select * from f(x) using saliency where label = 3",
            lambda q: q.saliency("pred").where(col.label == 3),
        ),
        (
            "select * from f(x) using saliency where pred != label and label = 3",
            lambda q: q.saliency("pred").where((col.pred != col.label) & (col.label == 3)),
        ),
        (
            "select * from f(x) using saliency where not correct",
            lambda q: q.saliency("pred").where(~col.correct),
        ),
        (
            "select * from f(x) using saliency where score > 0.5 or correct",
            lambda q: q.saliency("pred").where((col.score > 0.5) | col.correct),
        ),
        (
            "select * from f(x) using saliency where id in (0, 2)",
            lambda q: q.saliency("pred").where(col.id.isin([0, 2])),
        ),
        (
            "select * from f(x) using saliency where [0, 4, 0, 4] and id in (0, 2) and not correct",
            lambda q: (
                q.window(0, 4, 0, 4).saliency("pred").where(col.id.isin([0, 2]) & ~col.correct)
            ),
        ),
    ],
)
def test_clauses_build_the_chained_expression(q, text: str, build):
    m, query = q
    e = ia.query(text, f=m, x=(query_inputs(query), LABELS))
    assert e.node == build(query).node


def query_inputs(query: ia.Query) -> torch.Tensor:
    from algebra.ir.views import source_of

    return source_of(query.node).inputs.value


def test_where_values(q):
    m, query = q
    e = ia.query(
        "select * from f(x) using saliency where id in (0, 2) and not correct", f=m, x=query
    )
    python = query.saliency("pred").where(col.id.isin([0, 2]) & ~col.correct)
    same(e, python)
    r = e.compute()
    assert set(r.sample.values.tolist()) <= {0, 2}
    assert bool((r.pred != r.label).all())


def test_keywords_are_case_insensitive(q, images: torch.Tensor, others):
    m, query = q
    other, _ = others
    text = (
        "SELECT conv1 FROM f(x) MIN JOIN (Select conv1 From f(x2)) USING saliency(abs=FALSE) "
        "TARGET TOP 2 WHERE [0, 4, 0, 4] AND (Pred <> Label AND NOT Correct OR score >= 0.5);"
    )
    e = ia.query(text, f=m, x=query, x2=(other, LABELS))
    lower = ia.query(text.lower(), f=m, x=query, x2=(other, LABELS))
    left = query.layer("conv1").window(0, 4, 0, 4)
    python = (
        left.saliency(ia.topk(2), abs=False)
        .join(m.on(other, labels=LABELS).layer("conv1").saliency(ia.topk(2), abs=False), "min")
        .where(((col.pred != col.label) & ~col.correct) | (col.score >= 0.5))
    )
    assert e.node == lower.node == python.node


def test_sub_queries_inherit_using_and_target(q, others):
    m, query = q
    x2, x3 = others
    b, c = m.on(x2, labels=LABELS), m.on(x3, labels=LABELS)
    bound = {"f": m, "x": query, "x2": b, "x3": c}
    inherited = ia.query(
        "select * from f(x) join (select * from f(x2)) using saliency target label", **bound
    )
    assert inherited.node == query.saliency("label").join(b.saliency("label")).node
    own = ia.query(
        "select * from f(x) join (select * from f(x2) using input_x_gradient target 1) "
        "using saliency target label",
        **bound,
    )
    assert own.node == query.saliency("label").join(b.input_x_gradient(1)).node
    # The innermost query inherits its parent's target and the outer query's method.
    nested = ia.query(
        "select * from f(x) join (select * from f(x2) join (select * from f(x3)) target 2) "
        "using saliency(abs=false)",
        **bound,
    )
    python = query.saliency("pred", abs=False).join(
        b.saliency(2, abs=False).join(c.saliency(2, abs=False))
    )
    assert nested.node == python.node


def test_default_method_is_options_identity(q):
    m, query = q
    with ia.set_options(identity="saliency"):
        e = ia.query("select * from f(x)", f=m, x=query)
        assert e.node == query.saliency("pred").node == query.identity("pred").node
    assert ia.query("select * from f(x)", f=m, x=query).node.method == "shapley"


def test_where_filters_after_the_joins(q, others):
    m, query = q
    b = m.on(others[0], labels=LABELS)
    e = ia.query(
        "select * from f(x) join (select * from f(x2)) using saliency where correct",
        f=m,
        x=query,
        x2=b,
    )
    assert e.node == query.saliency("pred").join(b.saliency("pred")).where(col.correct).node


def test_left_join_of_two_models_is_the_disagreement(cnn: nn.Sequential, images: torch.Tensor):
    f, g = ia.model(cnn, name="f"), ia.model(make_other_cnn(), name="g")
    e = ia.query(
        "select * from f(x) left join (select * from g(x)) using saliency target label",
        f=f,
        g=g,
        x=(images, LABELS),
    )
    python = f.on(images, labels=LABELS).antijoin(g.on(images, labels=LABELS), "label", "saliency")
    same(e, python)
    assert "side" not in e.compute().dims


def test_left_join_of_inputs_passes_the_integration_rule(q, others):
    m, query = q
    b = m.on(others[0], labels=LABELS)
    e = ia.query(
        "select * from f(x) left join (select * from f(x')) "
        "using integrated_gradients(steps=8, method='riemann_left') target label",
        f=m,
        x=query,
        **{"x'": b},
    )
    python = query.antijoin(b, "label", "integrated_gradients", steps=8, integration="riemann_left")
    same(e, python)


# --- bindings -----------------------------------------------------------------------------


def test_module_and_model_bind_alike(cnn: nn.Sequential, images: torch.Tensor):
    text = "select * from f(x) using saliency"
    by_module = ia.query(text, f=cnn, x=images)
    by_model = ia.query(text, f=ia.model(cnn), x=images)
    assert by_module.node == by_model.node == ia.model(cnn).on(images).saliency("pred").node


def test_numpy_inputs(cnn: nn.Sequential, images: torch.Tensor):
    e = ia.query("select * from f(x) using saliency", f=cnn, x=images.numpy())
    xr.testing.assert_allclose(e.compute(), ia.model(cnn).on(images).saliency("pred").compute())


def test_tuple_binds_inputs_and_labels(cnn: nn.Sequential, images: torch.Tensor):
    e = ia.query("select * from f(x) using saliency target label", f=cnn, x=(images, LABELS))
    python = ia.model(cnn).on(images, labels=LABELS).saliency("label")
    same(e, python)
    assert e.compute().label.values.tolist() == LABELS


def test_query_binding_lends_its_data(cnn: nn.Sequential, images: torch.Tensor):
    f = ia.model(cnn)
    ids = ["a", "b", "c", "d"]
    # The query's own model is not used: only its inputs, labels, ids and dims.
    data = ia.model(make_other_cnn()).on(images, labels=LABELS, ids=ids, dims=["c", "h", "w"])
    e = ia.query("select * from f(x) using saliency where id in ('b', 'd')", f=f, x=data)
    python = (
        f.on(images, labels=LABELS, ids=ids, dims=["c", "h", "w"])
        .saliency("pred")
        .where(col.id.isin(["b", "d"]))
    )
    same(e, python)
    r = e.compute()
    assert r.sample.values.tolist() == ["b", "d"] and r.dims == ("sample", "c", "h", "w")


def test_query_is_lazy(cnn: nn.Sequential, images: torch.Tensor, counting):
    net = counting(cnn)
    e = ia.query("select * from f(x) join (select * from f(x)) using saliency", f=net, x=images)
    assert net.calls == 0
    e.compute()
    assert net.calls >= 1


# --- errors -------------------------------------------------------------------------------


def _error(excinfo: pytest.ExceptionInfo, text: str, column: int, line: int = 1) -> str:
    error = excinfo.value
    message = str(error)
    assert (error.line, error.column) == (line, column)
    assert f"line {line}, column {column}" in message
    row = text.split("\n")[line - 1]
    shown, caret = message.split("\n")[1:3]
    assert shown == "  " + row
    assert caret == "  " + " " * (column - 1) + "^"
    return message


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("select * form f(x)", 10),
        ("select * from f(x) where", 25),
        ("select * from f(x) using", 25),
        ("select * from f(x) target nobody", 27),
        ("select * from f(x) where [4, 2, 0, 4]", 26),
        ("select * from f(x) where lable = 3", 26),
        ("select * from f(x) join select * from f(y)", 25),
    ],
)
def test_syntax_errors(cnn: nn.Sequential, images: torch.Tensor, text: str, column: int):
    with pytest.raises(ia.QuerySyntaxError) as excinfo:
        ia.query(text, f=cnn, x=images)
    assert isinstance(excinfo.value, ia.QueryError) and isinstance(excinfo.value, ValueError)
    _error(excinfo, text, column)


def test_syntax_error_on_a_later_line(cnn: nn.Sequential, images: torch.Tensor):
    text = "select *\nfrom f(x)\n  where pred !! label"
    with pytest.raises(ia.QuerySyntaxError) as excinfo:
        ia.query(text, f=cnn, x=images)
    assert excinfo.value.line == 3


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("select * from g(x)", 15, ["unknown models 'g'", "'f'"]),
        ("select * from ff(x)", 15, ["'ff'", "Did you mean 'f'?"]),
        ("select * from f(xx)", 17, ["unknown inputs 'xx'", "Did you mean 'x'?"]),
        (
            "select * from f(x) join (select * from f(x3))",
            42,
            ["unknown inputs 'x3'", "bound are 'x', 'x2'"],
        ),
        ("select * from f(x')", 17, ['"x\'"', '**{"x\'": ...}']),
        ("select conv3 from f(x)", 8, ["no layer 'conv3'", "Did you mean 'conv2'"]),
        (
            "select * from f(x) join (select cnv1 from f(x2))",
            33,
            ["no layer 'cnv1'", "Did you mean 'conv1'"],
        ),
        ("select * from f(x) using saliancy", 26, ["'saliancy'", "Did you mean 'saliency'?"]),
        (
            "select * from f(x)\n  join (select * from f(x2) using integrated_gradient)",
            35,
            ["'integrated_gradient'", "Did you mean 'integrated_gradients'"],
        ),
        ("select * from f(x) using saliency(abz=true)", 26, ["abz"]),
        ("select * from f(x) using integrated_gradients(steps=0)", 26, ["steps"]),
        ("select * from f(x) using integrated_gradients(method='simpson')", 26, ["simpson"]),
        ("select * from f(x) using saliency(abs=1)", 26, ["abs"]),
        ("select * from f(x) where [0, 40, 0, 4]", 26, ["[0, 40, 0, 4]"]),
        ("select * from x(x)", 15, ["'x' is bound to a Tensor", "models"]),
        ("select * from f(f)", 17, ["'f' is bound to a Sequential", "inputs"]),
        (
            "select * from f(x) left join (select * from f(x2) where correct)",
            20,
            ["left-joined sub-query", "no joins or sample filters"],
        ),
        (
            "select * from f(x) left join (select * from f(x2) join (select * from f(x)))",
            20,
            ["left-joined sub-query", "no joins or sample filters"],
        ),
        (
            "select * from f(x) join (select * from f(x2)) left join (select * from f(x2))",
            47,
            ["left join", "must be the first join"],
        ),
        (
            "select * from f(x) left join (select * from f(x2) using saliency)",
            20,
            ["both sides of a left join"],
        ),
        (
            "select * from f(x) left join (select * from f(x)) using integrated_gradients(steps=8)",
            20,
            ["same model on the same inputs"],
        ),
    ],
)
def test_binding_errors(
    cnn: nn.Sequential, images: torch.Tensor, others, text: str, column: int, words: list[str]
):
    line = 2 if "\n" in text else 1
    with pytest.raises(ia.QueryError) as excinfo:
        ia.query(text, f=cnn, x=images, x2=others[0])
    assert not isinstance(excinfo.value, ia.QuerySyntaxError)
    message = _error(excinfo, text, column, line)
    for word in words:
        assert word in message


def test_unknown_parameter_names_close_matches(cnn: nn.Sequential, images: torch.Tensor):
    with pytest.raises(ia.QueryError) as excinfo:
        ia.query("select * from f(x) using integrated_gradients(step=8)", f=cnn, x=images)
    assert "Did you mean 'steps'?" in str(excinfo.value)


def test_messages_keep_their_closing_quote(cnn: nn.Sequential, images: torch.Tensor, others):
    with pytest.raises(ia.QueryError) as excinfo:
        ia.query(
            "select * from f(x) left join (select * from f(x2)) using saliency",
            f=cnn,
            x=images,
            x2=others[0],
        )
    assert "'integrated_gradients'" in str(excinfo.value)
    assert "'feature_ablation')" in str(excinfo.value)


def test_text_must_be_a_string(cnn: nn.Sequential, images: torch.Tensor):
    with pytest.raises(TypeError):
        ia.query(b"select * from f(x)", f=cnn, x=images)  # type: ignore[arg-type]


# --- to_query round trips -----------------------------------------------------------------


IG = "integrated_gradients"  # anti-joins that pass integrated gradients' parameters


@pytest.fixture
def rt(cnn: nn.Sequential, images: torch.Tensor, others):
    """Queries for the round trips: a, b on the cnn with labels, s with string ids, g on a."""
    m = ia.model(cnn)
    g = ia.model(make_other_cnn(), name="g")
    x2, x3 = others
    return {
        "m": m,
        "a": m.on(images, labels=LABELS),
        "b": m.on(x2, labels=[1, 1, 2, 2]),
        "c": m.on(x3),
        "s": m.on(images, ids=["p", "q", "r", "s"]),
        "g": g.on(images, labels=LABELS),
    }


ROUND_TRIPS = {
    "saliency": lambda r: r["a"].saliency("pred"),
    "saliency_signed": lambda r: r["a"].saliency("label", abs=False),
    "input_x_gradient": lambda r: r["a"].input_x_gradient("all"),
    "integrated_gradients": lambda r: r["a"].integrated_gradients(
        ia.topk(3), steps=8, method="riemann_trapezoid", baseline=0.5
    ),
    "grad_cam": lambda r: r["a"].layer("conv2").grad_cam(2, relu=False, upsample=False),
    "grad_cam_default": lambda r: r["a"].layer("relu2").grad_cam("pred"),
    "identity": lambda r: r["a"].identity(1),
    "window": lambda r: r["a"].window(0, 4, 2, 6).saliency(1),
    "nested_windows": lambda r: r["a"].window(0, 6, 0, 6).window(1, 3, 2, 5).saliency(1),
    "layer_window": lambda r: r["a"].layer("conv1").window(0, 4, 0, 4).input_x_gradient(0),
    "where": lambda r: r["a"].saliency("pred").where(col.pred != col.label),
    "query_where": lambda r: r["a"].where(col.label == 3).saliency("pred"),
    "and": lambda r: r["a"].saliency(0).where((col.pred != col.label) & (col.label == 3)),
    "or_not": lambda r: r["a"].saliency(0).where((col.pred != col.label) | ~col.correct),
    "not_group": lambda r: r["a"].saliency(0).where(~((col.score >= 0.5) & col.correct)),
    "and_of_or": lambda r: (
        r["a"].saliency(0).where(((col.label == 1) | (col.label == 2)) & (col.score < 0.9))
    ),
    "right_nested_and": lambda r: (
        r["a"].saliency(0).where(col.correct & ((col.label <= 1) & (col.label > 0)))
    ),
    "in_ints": lambda r: r["a"].saliency(0).where(col.id.isin([0, 2])),
    "in_strings": lambda r: r["s"].saliency(0).where(col.id.isin(["p", "r"]) | (col.id == "q")),
    "window_and_where": lambda r: (
        r["a"].window(0, 4, 0, 4).saliency(0).where(col.correct | ~col.correct)
    ),
    "join": lambda r: r["a"].saliency(0).join(r["b"].saliency(0)),
    "join_min": lambda r: r["a"].saliency(0).join(r["b"].saliency(1), "min"),
    "join_product": lambda r: r["a"].saliency(0).join(r["b"].input_x_gradient(0), "product"),
    "join_nested": lambda r: (
        r["a"].saliency(0).join(r["b"].saliency(0).join(r["c"].saliency(0), "min"))
    ),
    "join_chain": lambda r: (
        r["a"].saliency(0).join(r["b"].saliency(0)).join(r["a"].input_x_gradient(0), "product")
    ),
    "join_then_where": lambda r: r["a"].saliency(0).join(r["b"].saliency(0)).where(col.correct),
    "join_sub_where": lambda r: r["a"].saliency(0).join(r["b"].saliency(0).where(col.correct)),
    "join_models": lambda r: r["a"].saliency(0).join(r["g"].saliency(0)),
    "join_layers": lambda r: (
        r["a"].layer("conv1").saliency(0).join(r["b"].layer("conv1").saliency(0))
    ),
    "antijoin_inputs": lambda r: r["a"].antijoin(r["b"], "pred", IG, steps=8),
    "antijoin_windows": lambda r: (
        r["a"]
        .window(0, 4, 0, 4)
        .antijoin(r["b"].window(0, 4, 0, 4), "label", IG, steps=4, integration="riemann_left")
    ),
    "antijoin_layer": lambda r: (
        r["a"].layer("conv2").antijoin(r["b"].layer("conv2"), 1, IG, steps=4)
    ),
    "antijoin_shapley": lambda r: r["a"].antijoin(r["b"], "pred", samples=3, seed=1),
    "antijoin_models": lambda r: r["a"].antijoin(r["g"], "pred", "saliency"),
    "antijoin_models_where": lambda r: (
        r["a"].antijoin(r["g"], "label", "input_x_gradient").where(col.correct)
    ),
    "antijoin_window_models": lambda r: (
        r["a"].window(2, 6, 2, 6).antijoin(r["g"].window(2, 6, 2, 6), 3, "saliency", abs=False)
    ),
    "antijoin_then_join": lambda r: (
        r["a"]
        .antijoin(r["b"], "pred", IG, steps=8)
        .join(r["a"].antijoin(r["b"], "pred", IG, steps=8))
    ),
    "antijoin_where": lambda r: r["a"].antijoin(r["b"], "pred", IG, steps=8).where(col.label != 0),
    "shapley_default": lambda r: r["a"].shapley("pred"),
    "shapley_grid": lambda r: r["a"].shapley(2, ia.grid(2, 4), samples="exact", seed=3),
    "shapley_window": lambda r: r["a"].window(0, 4, 2, 6).shapley(1, ia.patches(2), samples=4),
    "kernel_shap": lambda r: r["a"].kernel_shap(ia.topk(2), samples=20, baseline=0.5, seed=0),
    "lime": lambda r: r["a"].lime("label", ia.grid(4, 4), samples=30, kernel_width=0.5, seed=2),
    "occlusion_tuple": lambda r: r["a"].occlusion("all", size=(3, 4, 4), stride=(3, 2, 2)),
    "occlusion_int": lambda r: r["a"].window(0, 6, 0, 6).occlusion(0, size=3, stride=3),
    "feature_ablation_layer": lambda r: (
        r["a"].layer("relu1").feature_ablation("pred", groups=ia.grid(2, 2))
    ),
    "feature_permutation": lambda r: r["a"].feature_permutation(1, seed=4),
}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_to_query_round_trip(rt, name: str):
    e = ROUND_TRIPS[name](rt)
    text = e.to_query()
    assert isinstance(text, str) and text.startswith("select ")
    rebuilt = ia.query(text, **e.bindings())
    assert rebuilt.node == e.node
    # The canonical text is stable: printing the rebuilt expression gives the same text.
    assert rebuilt.to_query() == text


def test_round_trip_values(rt):
    e = rt["a"].window(0, 6, 0, 6).saliency("label").join(rt["b"].saliency("label"), "min")
    rebuilt = ia.query(e.to_query(), **e.bindings())
    xr.testing.assert_allclose(rebuilt.compute(), e.compute())


def test_round_trip_does_not_depend_on_the_identity_option(rt):
    e = rt["a"].integrated_gradients("pred", steps=8)
    text, bound = e.to_query(), e.bindings()
    with ia.set_options(identity="saliency"):
        assert ia.query(text, **bound).node == e.node


def test_round_trip_of_quoted_and_dotted_layers(images: torch.Tensor):
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.mean = nn.Conv2d(3, 2, 3, padding=1)  # a keyword: printed quoted
            self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(2, 2, 1))
            self.fc = nn.Linear(2 * 8 * 8, 5)

        def forward(self, x):
            return self.fc(self.block(self.mean(x)).flatten(1))

    m = ia.model(Odd().eval())
    for layer in ("mean", "block", "block.0", "block.1"):
        e = m.on(images).layer(layer).saliency(0)
        text = e.to_query()
        assert ia.query(text, **e.bindings()).node == e.node
    assert m.on(images).layer("mean").saliency(0).to_query().startswith("select 'mean' from")


def test_default_names(rt):
    e = rt["a"].saliency(0).join(rt["g"].saliency(0).join(rt["b"].saliency(0)))
    text = e.to_query()
    # a and g read the same images and labels: one input name, x, for both.
    assert text.startswith("select * from f(x) join (select * from g(x) join (select * from f(x2)")
    assert set(e.bindings()) == {"f", "g", "x", "x2"}
    assert isinstance(e.bindings()["f"], ia.Model)
    assert all(isinstance(v, ia.Query) for k, v in e.bindings().items() if k.startswith("x"))


def test_to_query_uses_the_given_names(rt, cnn: nn.Sequential, images: torch.Tensor, others):
    e = rt["a"].saliency(0).join(rt["c"].saliency(0))
    names = {"net": rt["m"], "images": images, "x'": others[1]}
    text = e.to_query(names=names)
    assert text.startswith("select * from net(images) join (select * from net(x')")
    bound = e.bindings(names=names)
    assert set(bound) == {"net", "images", "x'"}
    assert ia.query(text, **bound).node == e.node
    # A module names its model too.
    assert e.to_query(names={"net": cnn}).startswith("select * from net(x)")


def test_to_query_names_a_query(rt):
    e = rt["a"].saliency(0).join(rt["b"].saliency(0))
    names = {"f": rt["m"], "images": rt["a"], "other": rt["b"]}
    assert e.to_query(names=names).startswith(
        "select * from f(images) join (select * from f(other)"
    )


def test_given_names_do_not_collide_with_default_names(rt, images: torch.Tensor):
    e = rt["a"].saliency(0)
    names = {"f": images}
    assert ia.query(e.to_query(names=names), **e.bindings(names=names)).node == e.node


@pytest.mark.parametrize("bad", ["join", "my net"])
def test_unusable_given_names_are_refused(rt, bad: str):
    e = rt["a"].saliency(0)
    with pytest.raises(ValueError, match="name"):
        e.to_query(names={bad: rt["m"]})


NO_QUERY_FORM = {
    "patch": (lambda r: r["a"].patch((0, 2, 0, 2)).saliency(0), "edited input"),
    "replace": (lambda r: r["a"].replace((0, 2, 0, 2), r["b"]).saliency(0), "edited input"),
    "edit": (lambda r: r["a"].edit(lambda t: t * 2).saliency(0), "edited input"),
    "mean": (lambda r: r["a"].saliency(0).mean("sample"), "mean"),
    "sum": (lambda r: r["a"].saliency(0).sum(), "sum"),
    "abs": (lambda r: r["a"].saliency(0).abs(), "abs"),
    "normalize": (lambda r: r["a"].saliency(0).normalize(), "normalize"),
    "isel": (lambda r: r["a"].saliency(0).isel(sample=[0]), "isel"),
    "groupby": (lambda r: r["a"].saliency(0).groupby("label").mean(), ""),
    "tensor_baseline": (
        lambda r: r["a"].integrated_gradients(0, steps=8, baseline=torch.zeros(3, 8, 8)),
        "baseline",
    ),
    "query_baseline": (
        lambda r: r["a"].integrated_gradients(0, steps=8, baseline=r["b"]),
        "baseline",
    ),
    "classes": (lambda r: r["a"].saliency(ia.classes([0, 1])), "classes"),
    "per_sample_target": (lambda r: r["a"].saliency([0, 1, 2, 3]), "target"),
    "callable_target": (lambda r: r["a"].saliency(lambda out: out.argmax(1)), "target"),
    "where_before_join": (
        lambda r: r["a"].saliency(0).where(col.correct).join(r["b"].saliency(0)),
        "where before a join",
    ),
    "join_of_reduced": (
        lambda r: r["a"].saliency(0).join(r["b"].saliency(0).abs()),
        "abs",
    ),
}


@pytest.mark.parametrize("name", list(NO_QUERY_FORM))
def test_no_query_form(rt, name: str):
    build, words = NO_QUERY_FORM[name]
    e = build(rt)
    with pytest.raises(ValueError, match="no form in the query language") as excinfo:
        e.to_query()
    assert words in str(excinfo.value)
    with pytest.raises(ValueError, match="no form in the query language"):
        e.bindings()


def test_numpy_and_query_bindings_compute_equal(cnn: nn.Sequential, images: torch.Tensor):
    data = np.asarray(images)
    a = ia.query("select * from f(x) using input_x_gradient target 1", f=cnn, x=data)
    b = ia.query(
        "select * from f(x) using input_x_gradient target 1", f=cnn, x=ia.model(cnn).on(images)
    )
    xr.testing.assert_allclose(a.compute(), b.compute())
