"""The parser's limits: query length, nesting (flat chains are one level) and tree depth."""

from __future__ import annotations

import time

import pytest

from algebra.lang.errors import QuerySyntaxError
from algebra.lang.limits import MAX_DEPTH
from algebra.lang.parse import MAX_LENGTH, parse_query
from algebra.lang.predicates import LEFT_DEEP
from algebra.lang.syntax import And, Column, Or

HEAD = "select * from f(x) where "


def _refused(text: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    return info.value


@pytest.mark.parametrize(
    "text",
    [
        HEAD + " or ".join(f"id = {i}" for i in range(40_000)),  # ~770 KB
        HEAD + "id in (" + ", ".join(str(i) for i in range(150_000)) + ")",  # ~1 MB
        HEAD + "correct" + " " * MAX_LENGTH,
    ],
    ids=["or_chain", "in_list", "spaces"],
)
def test_long_queries_are_refused_before_parsing(text):
    start = time.perf_counter()
    error = _refused(text)
    assert time.perf_counter() - start < 1.0  # no parse: the length decides
    assert f"at most {MAX_LENGTH} are accepted" in error.reason
    assert f"{len(text)} characters" in error.reason
    assert "id in (" in str(error)  # the hint for lists of values
    assert (error.line, error.column) == (1, MAX_LENGTH + 1)


def test_a_query_at_the_length_limit_parses():
    text = HEAD + "correct"
    text += " " * (MAX_LENGTH - len(text))
    assert len(text) == MAX_LENGTH
    assert parse_query(text).predicate is not None
    values = HEAD + "id in (" + ", ".join(str(i) for i in range(10_000)) + ")"
    assert len(values) < MAX_LENGTH
    assert len(parse_query(values).predicate.value) == 10_000


def test_flat_chains_are_one_level_of_nesting():
    # 150 levels of `not` around a flat chain of 40 terms: 151 levels of nesting.
    nots = "not " * 150
    chain = " or ".join(["correct"] * 40)
    tree = parse_query(HEAD + nots + "(" + chain + ")")
    assert parse_query(tree.to_text()) == tree
    # Nesting beyond the limit is refused as nesting, whatever chains it holds.
    error = _refused(HEAD + "not " * MAX_DEPTH + "(" + chain + ")")
    assert "nested too deeply" in error.reason
    # Nesting and chains together bound the tree's depth.
    error = _refused(HEAD + "not " * 190 + "(" + chain + ")")
    assert "the and/or chains within make the condition more than" in error.reason


@pytest.mark.parametrize("terms", [LEFT_DEEP + 1, 300, 5000])
def test_long_flat_chains_are_accepted_and_stay_shallow(terms):
    # A flat chain is one level of nesting, whatever its length, and its tree is grouped
    # in halves: and/or are associative, so the meaning is that of the flat chain.
    chain = " or ".join(f"id = {i}" for i in range(terms))
    tree = parse_query(HEAD + chain)
    assert _depth(tree.predicate) <= LEFT_DEEP + terms.bit_length()
    assert [t.value for t in _terms(tree.predicate)] == list(range(terms))
    # It prints back flat and parses to the same tree.
    assert tree.to_text() == HEAD + chain
    assert parse_query(tree.to_text()) == tree


def test_a_user_grouping_prints_back_with_its_parentheses():
    text = HEAD + "correct or (id = 1 or id = 2)"
    tree = parse_query(text)
    assert tree.to_text() == text and parse_query(tree.to_text()) == tree


def _depth(node) -> int:
    if isinstance(node, (And, Or)):
        return 1 + max(_depth(node.left), _depth(node.right))
    return 0


def _terms(node) -> list:
    return [*_terms(node.left), *_terms(node.right)] if isinstance(node, Or) else [node]


@pytest.mark.parametrize(
    "text",
    [
        HEAD + "not " * (MAX_DEPTH + 1) + "correct",
        HEAD + "(correct or " * (MAX_DEPTH + 1) + "correct" + ")" * (MAX_DEPTH + 1),
        "select * from f(x) "
        + "join (select * from f(x) " * (MAX_DEPTH + 1)
        + ")" * (MAX_DEPTH + 1),
    ],
    ids=["not", "or_in_parentheses", "join"],
)
def test_real_nesting_is_refused_while_parsing(text):
    assert "nested too deeply" in _refused(text).reason


def test_mixed_chains_and_redundant_parentheses():
    # 40 chains of 40 terms: 2 levels of nesting, 78 tree levels.
    inner = "(" + " or ".join(["correct"] * 40) + ")"
    tree = parse_query(HEAD + " and ".join([inner] * 40))
    assert parse_query(tree.to_text()) == tree
    # Parentheses around one condition add nothing.
    assert parse_query(HEAD + "(" * 5000 + "correct" + ")" * 5000).predicate == Column("correct")


def test_limits_do_not_leak_between_parses():
    # Depth bookkeeping is per parse: many small queries in a row stay fine.
    for _ in range(300):
        parse_query(HEAD + "not not correct and pred = 1")
