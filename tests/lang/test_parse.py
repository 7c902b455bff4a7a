"""The query language: text parses to the expected syntax tree, prints back, and fails well."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algebra.lang.errors import QueryError, QuerySyntaxError
from algebra.lang.limits import MAX_DEPTH
from algebra.lang.parse import parse_query
from algebra.lang.syntax import (
    COLUMNS,
    JOIN_KINDS,
    KEYWORDS,
    And,
    Column,
    Compare,
    Join,
    Method,
    Name,
    Not,
    Or,
    Select,
    TargetClause,
    Window,
)

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,  # no .hypothesis folder in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)


def q(layer: str | None = None, model: str = "f", inputs: str = "x", **clauses) -> Select:
    return Select(None if layer is None else Name(layer), Name(model), Name(inputs), **clauses)


def where(text: str) -> Select:
    return parse_query(f"select * from f(x) where {text}")


PRED_NE_LABEL = Compare(Column("pred"), "!=", Column("label"))

# --- the prototype's five queries -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        (
            "select * from f(x) where [16, 20, 20, 40]",
            q(windows=(Window(16, 20, 20, 40),)),
        ),
        ("select l3 from f(x)", q("l3")),
        (
            "select * from f(x) join (select * from f(x'))",
            q(joins=(Join("mean", q(inputs="x'")),)),
        ),
        (
            "select * from f(x) left join (select * from f(x'))",
            q(joins=(Join("anti", q(inputs="x'")),)),
        ),
        (
            "select * from f(x1) join (select * from f(x2) join (select * from f(x3)))",
            q(
                inputs="x1",
                joins=(Join("mean", q(inputs="x2", joins=(Join("mean", q(inputs="x3")),))),),
            ),
        ),
    ],
)
def test_prototype_queries(text, tree):
    parsed = parse_query(text)
    assert parsed == tree
    assert parsed.to_text() == text


def test_positions_point_at_the_text():
    text = "select l3 from f(x)\n  join (select * from g(x'))\nwhere [0, 8, 0, 8]"
    tree = parse_query(text)
    assert (tree.line, tree.column) == (1, 1)
    assert (tree.layer.line, tree.layer.column) == (1, 8)
    assert (tree.model.line, tree.model.column, tree.inputs.column) == (1, 16, 18)
    join = tree.joins[0]
    assert (join.line, join.column) == (2, 3)
    assert (join.query.model.line, join.query.model.column) == (2, 23)
    assert (tree.windows[0].line, tree.windows[0].column) == (3, 7)


def test_positions_are_not_part_of_equality():
    assert Name("x", 1, 2) == Name("x", 3, 4)
    assert hash(Window(0, 1, 0, 1, 1, 1)) == hash(Window(0, 1, 0, 1))
    assert parse_query("select *\n  from f(x)") == parse_query("select * from f(x)")


# --- SELECT, names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "layer"),
    [
        ("l3", "l3"),
        ("0", "0"),
        ("features.3", "features.3"),
        ("block1.conv", "block1.conv"),
        ("1.0.conv2", "1.0.conv2"),
        ("'any name'", "any name"),
        ('"double quoted"', "double quoted"),
        ("''", ""),
        ("'from'", "from"),
        (r"'it\'s'", "it's"),
        (r"'back\\slash'", "back\\slash"),
        (r"'tab\tnew\nline'", "tab\tnew\nline"),
    ],
)
def test_layer_names(written, layer):
    tree = parse_query(f"select {written} from f(x)")
    assert tree.layer == Name(layer)
    assert parse_query(tree.to_text()) == tree


def test_star_is_the_input():
    assert parse_query("select * from f(x)").layer is None


@pytest.mark.parametrize("name", ["x'", "x''", "_x", "images2", "X_1'"])
def test_input_and_model_names(name):
    tree = parse_query(f"select * from {name}({name})")
    assert tree.model.text == name and tree.inputs.text == name


def test_keywords_in_names_only_as_part_of_a_word():
    tree = parse_query("select selection from fromage(wherever) using joiner")
    assert (tree.layer.text, tree.model.text, tree.inputs.text) == (
        "selection",
        "fromage",
        "wherever",
    )
    assert tree.method == Method(Name("joiner"))
    assert parse_query("select * from from'(x)").model.text == "from'"


@pytest.mark.parametrize(
    ("text", "column", "hint"),
    [
        ("select * from where(x)", 15, "'where' is a keyword: it cannot be a name"),
        ("select * from f(left)", 17, "'left' is a keyword"),
        ("select from from f(x)", 8, "quote a layer named like it: 'from'"),
    ],
)
def test_keywords_are_reserved(text, column, hint):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert info.value.column == column
    assert hint in info.value.hint


def test_model_and_input_names_in_order_of_first_appearance():
    tree = parse_query(
        "select * from f(x) join (select * from g(x') left join (select * from f(y))) "
        "join (select * from h(x))"
    )
    assert tree.model_names() == ("f", "g", "h")
    assert tree.input_names() == ("x", "x'", "y")
    assert [s.model.text for s in tree.walk()] == ["f", "g", "f", "h"]


# --- joins -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "how"),
    [
        ("join", "mean"),
        ("mean join", "mean"),
        ("min join", "min"),
        ("product join", "product"),
        ("left join", "anti"),
        ("LEFT JOIN", "anti"),
        ("Min Join", "min"),
    ],
)
def test_join_kinds(written, how):
    tree = parse_query(f"select * from f(x) {written} (select * from g(y))")
    assert tree.joins == (Join(how, q(model="g", inputs="y")),)


def test_joins_chain_in_order():
    tree = parse_query(
        "select * from f(x) join (select * from f(a)) min join (select * from f(b)) "
        "left join (select * from f(c))"
    )
    assert [(j.how, j.query.inputs.text) for j in tree.joins] == [
        ("mean", "a"),
        ("min", "b"),
        ("anti", "c"),
    ]


def test_sub_queries_have_their_own_clauses():
    tree = parse_query(
        "select * from f(x) where correct join (select l3 from g(y) using saliency target 2 "
        "where [0, 4, 0, 4]) target pred"
    )
    sub = tree.joins[0].query
    assert sub == q(
        "l3",
        "g",
        "y",
        method=Method(Name("saliency")),
        target=TargetClause("index", 2),
        windows=(Window(0, 4, 0, 4),),
    )
    assert tree.target == TargetClause("pred") and tree.predicate == Column("correct")


# --- using, target ---------------------------------------------------------------------


def test_using_with_parameters():
    tree = parse_query(
        "select * from f(x) using integrated_gradients(steps=32, method='riemann_left', "
        'eps=1e-3, scale=-2.5, abs=true, relu=FALSE, label="cat")'
    )
    assert tree.method == Method(
        Name("integrated_gradients"),
        (
            ("steps", 32),
            ("method", "riemann_left"),
            ("eps", 0.001),
            ("scale", -2.5),
            ("abs", True),
            ("relu", False),
            ("label", "cat"),
        ),
    )
    assert isinstance(tree.method.params[0][1], int)
    assert tree.method.params[4][1] is True


@pytest.mark.parametrize("written", ["using saliency", "using saliency()", "USING saliency ( )"])
def test_using_without_parameters(written):
    assert parse_query(f"select * from f(x) {written}").method == Method(Name("saliency"))


@pytest.mark.parametrize(
    ("written", "target"),
    [
        ("pred", TargetClause("pred")),
        ("LABEL", TargetClause("label")),
        ("all", TargetClause("all")),
        ("top 3", TargetClause("top", 3)),
        ("TOP 1", TargetClause("top", 1)),
        ("0", TargetClause("index", 0)),
        ("17", TargetClause("index", 17)),
    ],
)
def test_targets(written, target):
    tree = parse_query(f"select * from f(x) target {written}")
    assert tree.target == target
    assert parse_query(tree.to_text()) == tree


def test_clauses_in_any_order():
    a = parse_query(
        "select * from f(x) where correct target top 2 join (select * from f(y)) using saliency"
    )
    b = parse_query(
        "select * from f(x) using saliency join (select * from f(y)) target top 2 where correct"
    )
    assert a == b
    assert a.to_text() == (
        "select * from f(x) join (select * from f(y)) using saliency target top 2 where correct"
    )


# --- where -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "predicate"),
    [
        ("pred != label", PRED_NE_LABEL),
        ("pred <> label", PRED_NE_LABEL),
        ("label = 3", Compare(Column("label"), "=", 3)),
        ("label == 3", Compare(Column("label"), "=", 3)),
        ("score > 0.5", Compare(Column("score"), ">", 0.5)),
        ("score >= .5", Compare(Column("score"), ">=", 0.5)),
        ("score < -1e-2", Compare(Column("score"), "<", -0.01)),
        ("id <= 10", Compare(Column("id"), "<=", 10)),
        ("label = 'cat'", Compare(Column("label"), "=", "cat")),
        ('label = "cat"', Compare(Column("label"), "=", "cat")),
        ("correct = false", Compare(Column("correct"), "=", False)),
        ("id in (1, 2, 3)", Compare(Column("id"), "in", (1, 2, 3))),
        ("id in ('a')", Compare(Column("id"), "in", ("a",))),
        ("correct", Column("correct")),
        ("not correct", Not(Column("correct"))),
        ("not not correct", Not(Not(Column("correct")))),
        ("PRED != Label", PRED_NE_LABEL),
        ("(pred != label)", PRED_NE_LABEL),
    ],
)
def test_predicates(text, predicate):
    tree = where(text)
    assert tree.predicate == predicate and tree.windows == ()
    assert parse_query(tree.to_text()) == tree


def test_precedence_not_over_and_over_or():
    a, b, c = Column("correct"), Compare(Column("label"), "=", 1), Compare(Column("pred"), "=", 2)
    assert where("correct or label = 1 and pred = 2").predicate == Or(a, And(b, c))
    assert where("correct and label = 1 or pred = 2").predicate == Or(And(a, b), c)
    assert where("not correct and label = 1").predicate == And(Not(a), b)
    assert where("not (correct and label = 1)").predicate == Not(And(a, b))
    assert where("(correct or label = 1) and pred = 2").predicate == And(Or(a, b), c)


def test_and_or_associate_to_the_left():
    a, b, c = (Compare(Column("id"), "=", i) for i in range(3))
    assert where("id = 0 and id = 1 and id = 2").predicate == And(And(a, b), c)
    assert where("id = 0 or id = 1 or id = 2").predicate == Or(Or(a, b), c)
    assert where("id = 0 and (id = 1 and id = 2)").predicate == And(a, And(b, c))


def test_windows_are_top_level_and_terms_kept_in_order():
    tree = where("[0, 8, 0, 8] and [2, 6, 2, 6] and pred != label")
    assert tree.windows == (Window(0, 8, 0, 8), Window(2, 6, 2, 6))
    assert tree.predicate == PRED_NE_LABEL
    moved = where("pred != label and [0, 8, 0, 8] and correct and ([2, 6, 2, 6] and id > 1)")
    assert moved.windows == (Window(0, 8, 0, 8), Window(2, 6, 2, 6))
    assert moved.predicate == And(
        And(PRED_NE_LABEL, Column("correct")), Compare(Column("id"), ">", 1)
    )
    assert where("([1, 2, 3, 4])").windows == (Window(1, 2, 3, 4),)
    assert where("[1, 2, 3, 4]").predicate is None


def test_windows_printed_first_and_or_parenthesised():
    tree = where("(correct or pred = 1) and [0, 8, 0, 8]")
    assert tree.to_text() == "select * from f(x) where [0, 8, 0, 8] and (correct or pred = 1)"
    assert parse_query(tree.to_text()) == tree


@pytest.mark.parametrize(
    ("condition", "column"),
    [
        ("[0, 8, 0, 8] or correct", 26),
        ("correct or [0, 8, 0, 8]", 37),
        ("not [0, 8, 0, 8]", 30),
        ("correct and [0, 8, 0, 8] or pred = 1", 38),
        ("([0, 8, 0, 8] and correct) or pred = 1", 27),
        ("not (correct and [0, 8, 0, 8])", 43),
    ],
)
def test_window_inside_or_or_not_is_an_error(condition, column):
    with pytest.raises(QuerySyntaxError, match="top-level 'and'") as info:
        where(condition)
    assert (info.value.line, info.value.column) == (1, column)


# --- lexical ---------------------------------------------------------------------------


def test_keywords_are_case_insensitive():
    upper = parse_query(
        "SELECT * FROM f(x) LEFT JOIN (SELECT L3 FROM f(X')) USING Saliency TARGET TOP 2 "
        "WHERE [0, 8, 0, 8] AND (NOT Correct OR Pred IN (1, 2))"
    )
    lower = parse_query(
        "select * from f(x) left join (select L3 from f(X')) using Saliency target top 2 "
        "where [0, 8, 0, 8] and (not correct or pred in (1, 2))"
    )
    assert upper == lower
    # Names keep their case.
    assert upper.joins[0].query.layer.text == "L3" and upper.method.name.text == "Saliency"


def test_comments_semicolon_and_whitespace():
    text = """
        -- compare an input with its edit
        select l3   -- the third layer
          from f ( x )
          left join ( select l3 from f(x') )--no space needed
          where [0,8,0,8]
            and pred != label ;
        -- trailing comment
    """
    tree = parse_query(text)
    assert tree == parse_query(
        "select l3 from f(x) left join (select l3 from f(x')) where [0, 8, 0, 8] and pred != label"
    )
    assert parse_query("select * from f(x);") == parse_query("select * from f(x)")
    assert parse_query("select\t*\r\nfrom\tf(x)") == q()


# --- errors ----------------------------------------------------------------------------


def test_error_message_with_caret():
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("select * form f(x)")
    error = info.value
    assert str(error) == (
        "query: expected 'from' at line 1, column 10\n  select * form f(x)\n           ^"
    )
    assert (error.text, error.line, error.column) == ("select * form f(x)", 1, 10)
    assert error.reason == "expected 'from'"
    assert isinstance(error, QueryError) and isinstance(error, ValueError)


def test_error_on_a_later_line():
    text = "select *\nfrom f(x)\nwhere pred != label\n  and [0, 8, 0, 8] or correct"
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert (info.value.line, info.value.column) == (4, 7)
    assert str(info.value).splitlines()[1:] == ["    and [0, 8, 0, 8] or correct", "        ^"]


def test_unexpected_end_points_past_the_last_token():
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("select * from f(x) join (select * from f(y)  \n  ")
    assert info.value.reason == "unexpected end of query; expected ')'"
    assert (info.value.line, info.value.column) == (1, 44)
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("select *\nfrom")
    assert (info.value.line, info.value.column) == (2, 5)
    assert str(info.value).endswith("  from\n      ^")


def test_caret_follows_tabs():
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("select\t*\tform f(x)")
    assert str(info.value).splitlines()[2] == "        \t \t^"


def test_long_lines_are_cut_around_the_column():
    text = "select * from f(x) where " + " and ".join(["correct"] * 40) + " or [0, 8, 0, 8]"
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    _, shown, caret = str(info.value).splitlines()
    assert shown.startswith("  ...") and len(shown) < 100
    assert shown[caret.index("^") :].startswith("[0, 8, 0, 8]")


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("", "empty query; expected 'select'", 1),
        ("  -- nothing\n", "empty query; expected 'select'", 1),
        (";", "expected 'select'", 1),
        ("select", "unexpected end of query; expected '*', 'neurons', a layer name or a quoted string", 7),
        ("select * from f()", "expected a name", 17),
        ("select * from f(x, y)", "expected ')'", 18),
        ("select * from f(x) wher pred = 1", "expected a clause (join, using, target, where) or the end of the query", 20),
        ("select * from f(x) where", "unexpected end of query; expected a condition (a column, a window, mistakes, 'not' or '(')", 25),
        ("select * from f(x) where 3", "expected a condition (a column, a window, mistakes, 'not' or '(')", 26),
        ("select * from f(x) where pred", "column 'pred' is not a condition on its own; compare it, as in pred = ...", 26),
        ("select * from f(x) where prd = 1", "unknown column 'prd'; expected one of 'pred', 'label', 'correct', 'score', 'id'", 26),
        ("select * from f(x) where label = foo", "unknown column 'foo'; expected one of 'pred', 'label', 'correct', 'score', 'id'", 34),
        ("select * from f(x) where [0, 8, 0]", "expected ','", 34),
        ("select * from f(x) where [0, 8, -1, 8]", "expected an integer", 33),
        ("select * from f(x) where [8, 8, 0, 8]", "window [8, 8, 0, 8] is empty; expected [r0, r1, c0, c1] with r0 < r1 and c0 < c1", 26),
        ("select * from f(x) where id in ()", "expected a number, a quoted string, 'true' or 'false'", 33),
        ("select * from f(x) where score > 1e999", "number 1e999 is out of range", 34),
        ("select * from f(x) target preds", "unknown target 'preds'; expected pred, label, all, top <k> or a class index", 27),
        ("select * from f(x) target top 0", "top needs k >= 1; got 0", 31),
        ("select * from f(x) target top", "unexpected end of query; expected an integer", 30),
        ("select * from f(x) using ig(a=1, a=2)", "parameter 'a' is given twice", 34),
        ("select * from f(x) using ig(a=b)", "expected a number, a quoted string, 'true' or 'false'", 31),
        ("select * from f(x) join select * from f(y)", "expected '('", 25),
        ("select * from f(x) join (select * from f(y)) x", "expected a clause (join, using, target, where) or the end of the query", 46),
        ("select * from f(x) mean (select * from f(y))", "expected 'join'", 25),
        ("select * from f(x);;", "expected the end of the query", 20),
        ("select * from f(x) where 'a b", "unexpected character \"'\"; expected a condition (a column, a window, mistakes, 'not' or '(')", 26),
    ],
)  # fmt: skip
def test_syntax_errors(text, reason, column):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert info.value.reason == reason
    assert info.value.column == column


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("select * from f(x) wher pred = 1", "Did you mean 'where'?"),
        ("select * from f(x) where prd = 1", "Did you mean 'pred'?"),
        ("select * from f(x) target preds", "Did you mean 'pred'?"),
        ("select * from f(x) usng saliency", "Did you mean 'using'?"),
    ],
)
def test_hints(text, hint):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert info.value.hint == hint
    assert str(info.value).endswith("^\n" + hint)


@pytest.mark.parametrize(
    ("text", "keyword", "column"),
    [
        ("select * from f(x) where correct where pred = 1", "where", 34),
        ("select * from f(x) target 1 join (select * from f(y)) TARGET 2", "target", 55),
        ("select * from f(x) using saliency using saliency", "using", 35),
    ],
)
def test_duplicate_clauses(text, keyword, column):
    with pytest.raises(QuerySyntaxError, match=f"duplicate '{keyword}' clause") as info:
        parse_query(text)
    assert info.value.column == column


def test_deep_nesting():
    deep_not = "select * from f(x) where " + "not " * (MAX_DEPTH + 5) + "correct"
    with pytest.raises(QuerySyntaxError, match="nested too deeply"):
        parse_query(deep_not)
    deep_join = (
        "select * from f(x) "
        + "join (select * from f(x) " * (MAX_DEPTH + 5)
        + ")" * (MAX_DEPTH + 5)
    )
    with pytest.raises(QuerySyntaxError, match="nested too deeply"):
        parse_query(deep_join)
    # A flat chain is one level of nesting, whatever its length (the issue: 300 terms).
    long_and = "select * from f(x) where " + " and ".join(["correct"] * (MAX_DEPTH * 2))
    assert parse_query(long_and).to_text() == long_and
    # Parentheses add no depth; just under the limit, the tree prints and compares.
    parens = "select * from f(x) where " + "(" * 3000 + "correct" + ")" * 3000
    assert parse_query(parens).predicate == Column("correct")
    tree = parse_query("select * from f(x) where " + " or ".join(["correct"] * MAX_DEPTH))
    assert parse_query(tree.to_text()) == tree


def test_huge_numbers():
    with pytest.raises(QuerySyntaxError, match="too many digits"):
        parse_query("select * from f(x) target " + "9" * 5000)


@pytest.mark.parametrize("value", [None, b"select * from f(x)", 3, ["select"]])
def test_non_string_is_a_type_error(value):
    with pytest.raises(TypeError, match="text"):
        parse_query(value)


def test_errors_pickle():
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("select * from f(x) where prd = 1")
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is QuerySyntaxError and str(copy) == str(info.value)
    assert (copy.line, copy.column, copy.hint) == (1, 26, "Did you mean 'pred'?")


def test_query_error_for_binding_steps():
    text = "select * from f(x)\n  join (select * from g(y))"
    error = QueryError.at(text, 2, 23, "unknown model 'g'")
    assert type(error) is QueryError and not isinstance(error, QuerySyntaxError)
    assert str(error) == (
        "query: unknown model 'g' at line 2, column 23\n"
        "    join (select * from g(y))\n"
        "                        ^"
    )


def test_syntax_nodes_check_their_kinds():
    with pytest.raises(ValueError, match="op"):
        Compare(Column("id"), "~", 1)
    with pytest.raises(ValueError, match="how"):
        Join("outer", q())
    with pytest.raises(ValueError, match="kind"):
        TargetClause("best")


# --- round trips -----------------------------------------------------------------------

ROUND_TRIPS = [
    "select * from f(x)",
    "select 'a layer' from f(x)",
    "select '' from f(x)",
    "select 'select' from f(x)",
    "select features.3 from net(images)",
    "select * from f(x) min join (select * from g(x)) product join (select * from h(x))",
    "select * from f(x) using ig(steps=32, method='riemann_left', eps=1e-05, abs=false)",
    "select * from f(x) target top 5",
    "select * from f(x) where [0, 8, 0, 8] and [2, 6, 2, 6]",
    "select * from f(x) where not (correct or label = 'it\\'s')",
    "select * from f(x) where correct and (pred = 1 and label = 2)",
    "select * from f(x) where (correct or pred = 1) and not not correct",
    "select * from f(x) where correct or (pred = 1 or label = 2)",
    "select * from f(x) where id in (1, 'b', 2.5)",
    "select * from f(x) where score >= -1e+100 and score < 1e-100",
    "select * from f(x) where [0, 1, 0, 1] and (correct or label = pred)",
    "select l3 from f(x) left join (select l3 from f(x') where [1, 3, 1, 3]) using saliency "
    "target label where [0, 8, 0, 8] and pred != label",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_to_text_round_trip(text):
    tree = parse_query(text)
    assert tree.to_text() == text
    assert parse_query(tree.to_text()) == tree


# --- fuzzing ---------------------------------------------------------------------------


def _check_error(text: str, error: QuerySyntaxError) -> None:
    lines = text.split("\n")
    assert error.text == text
    assert 1 <= error.line <= len(lines)
    assert 1 <= error.column <= len(lines[error.line - 1]) + 1
    assert str(error).startswith("query: ") and "^" in str(error)


def _parses_or_fails_cleanly(text: str) -> None:
    try:
        tree = parse_query(text)
    except QuerySyntaxError as error:
        _check_error(text, error)
        return
    assert parse_query(tree.to_text()) == tree


@FUZZ
@given(st.text())
def test_fuzz_any_text(text):
    _parses_or_fails_cleanly(text)


WORDS = [
    "select", "SELECT", "*", "from", "f(x)", "g(x')", "f", "(", ")", "join", "left", "min",
    "mean", "product", "[1,2,3,4]", "[0, 8, 0, 8]", "[", "]", ",", "where", "WHERE", "and",
    "or", "not", "pred", "label", "correct", "score", "id", "in", "(1, 2)", "!=", "=", "==",
    "<>", "<", ">=", "3", "-1", "0.5", "'cat'", '"x y"', "true", "false", "using",
    "saliency", "integrated_gradients(steps=2)", "ig(a=1,", "target", "top", "all", "l3",
    "features.0", ";", "-- c\n", "\n", "x'", "'", "select * from f(x)",
]  # fmt: skip
PREFIXES = ["", "select * from f(x)", "select l3 from f(x) where"]


@FUZZ
@given(st.sampled_from(PREFIXES), st.lists(st.sampled_from(WORDS), max_size=24))
def test_fuzz_query_words(prefix, words):
    _parses_or_fails_cleanly(" ".join([prefix, *words]))


identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}'{0,2}", fullmatch=True).filter(
    lambda s: s.lower() not in KEYWORDS
)
layers = st.one_of(
    st.none(),
    st.from_regex(r"[A-Za-z0-9_]{1,5}(\.[A-Za-z0-9_]{1,3}){0,2}", fullmatch=True).map(Name),
    st.text(max_size=6).map(Name),
)
scalars = st.one_of(
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.booleans(),
)
columns = st.sampled_from(COLUMNS).map(Column)
comparisons = st.one_of(
    st.builds(Compare, columns, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), scalars),
    st.builds(Compare, columns, st.sampled_from(["=", "!="]), columns),
    st.builds(
        Compare,
        columns,
        st.just("in"),
        st.lists(st.one_of(st.integers(), st.text(max_size=3)), min_size=1, max_size=3).map(tuple),
    ),
)
predicates = st.recursive(
    st.one_of(comparisons, st.just(Column("correct"))),
    lambda inner: st.one_of(
        st.builds(Not, inner), st.builds(And, inner, inner), st.builds(Or, inner, inner)
    ),
    max_leaves=8,
)
windows = st.builds(
    lambda r, h, c, w: Window(r, r + h, c, c + w),
    st.integers(0, 64),
    st.integers(1, 64),
    st.integers(0, 64),
    st.integers(1, 64),
)
methods = st.builds(
    Method,
    identifiers.map(Name),
    st.lists(st.tuples(identifiers, scalars), max_size=3, unique_by=lambda p: p[0]).map(tuple),
)
targets = st.one_of(
    st.sampled_from(["pred", "label", "all"]).map(TargetClause),
    st.integers(1, 1000).map(lambda k: TargetClause("top", k)),
    st.integers(0, 1000).map(lambda i: TargetClause("index", i)),
)


def _selects(joins: st.SearchStrategy[tuple[Join, ...]]) -> st.SearchStrategy[Select]:
    return st.builds(
        Select,
        layers,
        identifiers.map(Name),
        identifiers.map(Name),
        joins=joins,
        method=st.none() | methods,
        target=st.none() | targets,
        windows=st.lists(windows, max_size=3).map(tuple),
        predicate=st.none() | predicates,
    )


queries = st.recursive(
    _selects(st.just(())),
    lambda inner: _selects(
        st.lists(st.builds(Join, st.sampled_from(JOIN_KINDS), inner), min_size=1, max_size=2).map(
            tuple
        )
    ),
    max_leaves=4,
)


@FUZZ
@given(queries)
def test_fuzz_trees_round_trip(tree):
    text = tree.to_text()
    parsed = parse_query(text)
    assert parsed == tree
    assert parsed.to_text() == text  # types too: 1 and 1.0 and true print differently


@FUZZ
@given(queries, st.data())
def test_fuzz_mutated_queries(tree, data):
    # Near misses of valid queries reach the errors deep inside the grammar.
    text = tree.to_text()
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 12)))
    insert = data.draw(st.sampled_from(["", *WORDS]))
    _parses_or_fails_cleanly(text[:start] + insert + text[end:])
