"""A layer's options in the select list: ``select relu[call=1, output=0, input] from f(x)``
parses into the tree's ``layer_options`` and prints back the same."""

from __future__ import annotations

import pytest

from algebra.lang.errors import QuerySyntaxError
from algebra.lang.parse import parse_query


@pytest.mark.parametrize(
    ("text", "layer", "options"),
    [
        ("select relu[call=1] from f(x)", "relu", (("call", 1),)),
        ("select relu[call=all] from f(x)", "relu", (("call", "all"),)),
        ("select lstm[output=0] from f(x)", "lstm", (("output", 0),)),
        ("select enc.rnn[output='h'] from f(x)", "enc.rnn", (("output", "h"),)),
        ("select 'select'[input] from f(x)", "select", (("input", True),)),
        (
            "select blocks.0.attn[call=2, output=1] from f(x)",
            "blocks.0.attn",
            (("call", 2), ("output", 1)),
        ),
    ],
)
def test_layer_options_parse_and_print_back(text, layer, options):
    tree = parse_query(text)
    assert tree.layer.text == layer and tree.layer_options == options
    assert tree.to_text() == text
    assert parse_query(tree.to_text()) == tree


def test_a_layer_without_options_has_none():
    assert parse_query("select relu from f(x)").layer_options == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("select relu[call=1, call=2] from f(x)", "layer option 'call' is given twice"),
        ("select relu[call=1 from f(x)", "expected ',' or ']'"),
        ("select relu[] from f(x)", "expected a name"),
        ("select * [input] from f(x)", "expected 'from'"),
    ],
)
def test_bad_layer_options(text, message):
    with pytest.raises(QuerySyntaxError, match=message):
        parse_query(text)
